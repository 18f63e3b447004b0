-- codedpo DuckDB schema. Applied idempotently on every first connection of a process.
-- Convention: one name per artifact — the Dagster asset, its table and its views share a prefix.
-- Every partitioned table has `partition_key` (the Dagster partition) and is written only by
-- Store.replace_partition (delete + insert in one transaction).

-- seeds: self-contained stdlib-only functions harvested from the configured sources.
CREATE TABLE IF NOT EXISTS seeds (
    partition_key  VARCHAR NOT NULL,   -- "<source>:<path>" or "<source>:<file>#<shard>"
    seed_id        VARCHAR NOT NULL,   -- hash(partition_key, norm_hash): stable id for lineage
    source         VARCHAR NOT NULL,   -- configured source name
    source_kind    VARCHAR NOT NULL,   -- stdlib | directory | git | jsonl
    path           VARCHAR NOT NULL,   -- file (or "file:line" for JSONL records) inside the source
    symbol         VARCHAR NOT NULL,   -- function name
    code           VARCHAR NOT NULL,   -- needed imports + the function's original source
    license        VARCHAR,            -- SPDX-ish id where known
    revision       VARCHAR,            -- git commit for git sources
    imports        VARCHAR[],          -- import statements the seed needs (stdlib only)
    n_lines        INTEGER NOT NULL,
    content_hash   VARCHAR NOT NULL,   -- hash of `code`
    norm_hash      VARCHAR NOT NULL,   -- hash of the rename/format-normalized AST (dedup key)
    unit_hash      VARCHAR NOT NULL,   -- content hash of the partition unit (its data version)
    contamination  DOUBLE NOT NULL,    -- share of n-grams shared with HumanEval
    PRIMARY KEY (partition_key, norm_hash)
);

-- seeds_rejected: every input that produced no seed, with a reason code (see README).
CREATE TABLE IF NOT EXISTS seeds_rejected (
    partition_key  VARCHAR NOT NULL,
    source         VARCHAR NOT NULL,
    path           VARCHAR NOT NULL,
    symbol         VARCHAR,            -- NULL when the whole file/record was skipped
    reason         VARCHAR NOT NULL,
    detail         VARCHAR
);

-- seeds_unique: one row per normalized AST across partitions (the first partition key wins),
-- for consumers that want a globally deduplicated seed set.
CREATE OR REPLACE VIEW seeds_unique AS
SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY norm_hash ORDER BY partition_key, seed_id) AS rn FROM seeds
) WHERE rn = 1;

-- seeds_summary: what each source yielded and lost, in one row per source.
CREATE OR REPLACE VIEW seeds_summary AS
WITH kept AS (SELECT source, count(*) AS seeds, count(DISTINCT partition_key) AS partitions FROM seeds GROUP BY source),
     lost AS (SELECT source, count(*) AS rejected,
                     count(*) FILTER (WHERE reason = 'decontaminated') AS decontaminated
              FROM seeds_rejected GROUP BY source)
SELECT coalesce(k.source, l.source) AS source, coalesce(k.partitions, 0) AS partitions,
       coalesce(k.seeds, 0) AS seeds, coalesce(l.rejected, 0) AS rejected,
       coalesce(l.decontaminated, 0) AS decontaminated
FROM kept k FULL OUTER JOIN lost l USING (source) ORDER BY source;
