-- Trusted tests per prompt with the test text.
SELECT t.prompt_id, count(*) AS trusted, list(g.test ORDER BY t.test_index) AS tests
FROM trusted_tests t JOIN generated_tests g USING (partition_key, prompt_id, test_id) GROUP BY t.prompt_id ORDER BY trusted DESC;
