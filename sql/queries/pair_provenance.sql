-- Every preference pair traced back: seed file and function, prompt, the two codes' sample indices and behaviour
-- clusters, scores, confidence, trusted tests.
SELECT p.pair_id[:8] AS pair, p.kind, s.source, s.path, s.symbol AS seed_function, p.prompt_id[:8] AS prompt,
       c.sample_index AS chosen_sample, r.sample_index AS rejected_sample, p.chosen_cluster, p.rejected_cluster,
       round(p.chosen_score, 4) AS chosen_score, round(p.rejected_score, 4) AS rejected_score, round(p.margin, 4) AS margin, round(p.confidence, 3) AS confidence,
       len(p.trusted_test_ids) AS trusted_tests, pr.model
FROM preference_pairs p
JOIN seeds s ON s.seed_id = p.seed_id
JOIN prompts pr ON pr.prompt_id = p.prompt_id
JOIN candidate_code c ON c.code_id = p.chosen_code_id
JOIN candidate_code r ON r.code_id = p.rejected_code_id
ORDER BY s.path, p.kind;
