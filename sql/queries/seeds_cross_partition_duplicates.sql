-- Functions that occur (after normalization) in more than one partition.
SELECT norm_hash, count(*) AS copies, list(partition_key || '::' || symbol ORDER BY partition_key) AS places
FROM seeds GROUP BY norm_hash HAVING count(*) > 1 ORDER BY copies DESC;
