-- Seeds, partitions, rejections and decontamination drops per source.
SELECT * FROM seeds_summary;
