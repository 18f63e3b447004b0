-- Per prompt, how its timeouts came about: cells that ran into a limit (the full one or one
-- calibrated from the other candidates) and cells not run after a candidate kept timing out.
SELECT prompt_id,
       count(*) FILTER (WHERE status = 'timeout' AND limit_ms IS NOT NULL) AS ran_into_limit,
       count(*) FILTER (WHERE status = 'timeout' AND limit_ms IS NULL) AS not_run,
       count(DISTINCT code_id) FILTER (WHERE status = 'timeout') AS codes_timing_out,
       min(limit_ms) FILTER (WHERE status = 'timeout') AS lowest_limit_ms,
       max(limit_ms) AS highest_limit_ms
FROM pass_matrix
WHERE NOT coalesce(is_reference, false)
GROUP BY prompt_id
HAVING count(*) FILTER (WHERE status = 'timeout') > 0
ORDER BY ran_into_limit + not_run DESC, prompt_id;
