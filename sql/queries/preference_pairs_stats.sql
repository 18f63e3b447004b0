-- Pairs by kind and ranker, and why prompts yielded none.
SELECT 'pairs' AS what, kind, ranker AS detail, pairs AS n FROM preference_pairs_stats
UNION ALL SELECT 'skipped', kind, reason, count(*) FROM preference_pairs_skipped GROUP BY ALL ORDER BY what, kind, n DESC;
