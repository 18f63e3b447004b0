-- Per generated test: how many codes pass it, its self-verification score, and whether it is trusted.
SELECT t.prompt_id[:8] AS prompt, t.test, t.verified,
       count(m.code_id) AS codes, count(*) FILTER (WHERE m.passed) AS passed_by,
       round(avg(m.passed::INT), 3) AS pass_rate,
       round(any_value(v.score), 4) AS trust_score,
       bool_or(tt.test_id IS NOT NULL) AS trusted
FROM generated_tests t
JOIN pass_matrix m ON m.test_id = t.test_id AND NOT coalesce(m.is_reference, false)
LEFT JOIN verification_scores v ON v.item_id = t.test_id AND v.kind = 'test' AND v.ranker = 'self_verification'
LEFT JOIN trusted_tests tt ON tt.test_id = t.test_id
WHERE t.reason IS NULL
GROUP BY ALL ORDER BY trust_score DESC NULLS LAST, passed_by DESC LIMIT 50;
