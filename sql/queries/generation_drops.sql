-- Where the model's output went: kept vs dropped (with reason) per stage.
SELECT 'prompts' AS stage, coalesce(reason, 'kept') AS outcome, count(*) AS n FROM prompts GROUP BY ALL
UNION ALL SELECT 'candidate_code', coalesce(reason, 'kept'), count(*) FROM candidate_code GROUP BY ALL
UNION ALL SELECT 'generated_tests', coalesce(reason, 'kept'), count(*) FROM generated_tests GROUP BY ALL
ORDER BY stage, n DESC;
