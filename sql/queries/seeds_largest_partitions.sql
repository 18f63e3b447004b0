-- Partitions with the most seeds, and their average seed size.
SELECT partition_key, count(*) AS seeds, round(avg(n_lines), 1) AS avg_lines, any_value(license) AS license
FROM seeds GROUP BY partition_key ORDER BY seeds DESC LIMIT 20;
