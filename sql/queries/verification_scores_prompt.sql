-- Per-prompt code scores by ranker (the default, consensus, first), best first.
SELECT prompt_id, ranker, item_index AS code_index, round(score, 4) AS score, rank
FROM verification_scores WHERE kind = 'code' ORDER BY prompt_id, ranker = 'consensus' DESC, ranker, rank;
