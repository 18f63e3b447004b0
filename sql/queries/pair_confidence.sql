-- Per prompt: the confidence the pair filter saw (calibrated P(chosen code correct)),
-- the threshold, and what came of it (pairs made, or why not).
SELECT prompt_id, kind, round(confidence, 3) AS confidence, round(min_confidence, 3) AS min_confidence, 'pair' AS outcome
FROM preference_pairs
UNION ALL
SELECT prompt_id, kind, round(confidence, 3), NULL, reason FROM preference_pairs_skipped
ORDER BY confidence DESC NULLS LAST, prompt_id, kind;
