-- Per-prompt code scores by ranker (the default, behaviour, first), best first, with each code's
-- behaviour cluster, the ranker's chosen code and its calibrated confidence.
SELECT prompt_id, ranker, item_index AS code_index, cluster, chosen, round(score, 4) AS score, rank, round(confidence, 3) AS confidence
FROM verification_scores WHERE kind = 'code' ORDER BY prompt_id, ranker = 'behaviour' DESC, ranker, rank;
