-- Why inputs were skipped: reason counts per source, most frequent first.
SELECT source, reason, count(*) AS n, any_value(detail) AS example
FROM seeds_rejected GROUP BY source, reason ORDER BY n DESC;
