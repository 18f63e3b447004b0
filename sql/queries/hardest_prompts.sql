-- Prompts the model finds hardest: lowest best-code pass rate, with the seed they came from.
SELECT m.prompt_id[:8] AS prompt, s.path, s.symbol, count(DISTINCT m.code_id) AS codes, count(DISTINCT m.test_id) AS tests,
       round(max(cp.rate), 3) AS best_code_pass_rate, round(avg(m.passed::INT), 3) AS pass_rate,
       count(*) FILTER (WHERE m.status IN ('error', 'timeout', 'crash')) AS broken_cells
FROM pass_matrix m
JOIN (SELECT code_id, avg(passed::INT) AS rate FROM pass_matrix WHERE NOT coalesce(is_reference, false) GROUP BY code_id) cp USING (code_id)
JOIN prompts p ON p.prompt_id = m.prompt_id
JOIN seeds s ON s.seed_id = p.seed_id
GROUP BY ALL ORDER BY best_code_pass_rate, pass_rate, prompt LIMIT 30;
