-- Behaviour clusters of each prompt: programs with identical outputs on every test, the samples
-- behind them, how many tests they pass, and (beside) the default ranker's chosen cluster.
SELECT b.prompt_id, b.cluster, b.programs, b.samples, b.tests_passed,
       coalesce(s.chosen_cluster = b.cluster, false) AS chosen, round(s.confidence, 3) AS confidence, left(b.outputs, 120) AS outputs
FROM behaviour_clusters b
LEFT JOIN (SELECT partition_key, prompt_id, any_value(cluster) FILTER (WHERE chosen) AS chosen_cluster, any_value(confidence) AS confidence
           FROM verification_scores WHERE ranker = 'behaviour' AND kind = 'code' GROUP BY ALL) s USING (partition_key, prompt_id)
ORDER BY b.prompt_id, b.samples DESC;
