-- Tasks whose seed disagrees with them (drifted: the seed passes few of the tests and no candidate comes near it;
-- conflicting: no candidate behaves like the seed): the seed and the prompt side by side, to read what changed.
SELECT r.prompt_id[:8] AS prompt, s.source, s.path, s.symbol, r.status, round(r.fidelity, 3) AS fidelity,
       round(r.overlap, 3) AS closest_overlap, r.reason, s.code AS seed, p.prompt
FROM seed_reference r
JOIN seeds s USING (partition_key, seed_id)
JOIN prompts p USING (partition_key, prompt_id)
WHERE r.status IN ('drifted', 'conflicting')
ORDER BY s.source, s.path, s.symbol, r.status;
