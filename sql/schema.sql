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

-- seeds_rejected: every input that produced no seed, with a reason code (see docs/architecture.md, Seeds).
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

-- generation_cache: every model completion, content-addressed by (model, params, prompt, sample).
-- Not partitioned: unchanged prompts are free across partitions and rebuilds.
CREATE TABLE IF NOT EXISTS generation_cache (
    cache_key     VARCHAR PRIMARY KEY,
    model         VARCHAR NOT NULL,
    params        VARCHAR NOT NULL,
    sample_index  INTEGER NOT NULL,
    prompt        VARCHAR NOT NULL,
    text          VARCHAR NOT NULL
);

-- prompts: one programming task per seed, written by the model; reason IS NULL = usable.
CREATE TABLE IF NOT EXISTS prompts (
    partition_key  VARCHAR NOT NULL,
    prompt_id      VARCHAR NOT NULL,   -- hash(seed_id, model, task text)
    seed_id        VARCHAR NOT NULL,
    entry_point    VARCHAR NOT NULL,
    signature      VARCHAR NOT NULL,
    prompt         VARCHAR NOT NULL,   -- the task given to the model for solutions and tests
    model          VARCHAR NOT NULL,
    reason         VARCHAR,            -- empty_output | solution_in_prompt (the model wrote code, not a statement)
    raw            VARCHAR,            -- the model's output
    cleaned        VARCHAR             -- what was cut from the model's output (code defining functions), or NULL
);
ALTER TABLE prompts ADD COLUMN IF NOT EXISTS cleaned VARCHAR;

-- candidate_code: N sampled solutions per prompt; dropped samples keep a row with their reason.
CREATE TABLE IF NOT EXISTS candidate_code (
    partition_key  VARCHAR NOT NULL,
    prompt_id      VARCHAR NOT NULL,
    code_id        VARCHAR NOT NULL,
    sample_index   INTEGER NOT NULL,
    code           VARCHAR,
    norm_hash      VARCHAR,
    reason         VARCHAR,
    detail         VARCHAR,
    raw            VARCHAR,
    multiplicity   INTEGER            -- kept rows: how many of the prompt's samples produced this program
);
ALTER TABLE candidate_code ADD COLUMN IF NOT EXISTS multiplicity INTEGER;  -- databases made before the column

-- generated_tests: assert statements sampled per prompt (M samples); verified = judged outside
-- the candidate's process (assert CALL == LITERAL form).
CREATE TABLE IF NOT EXISTS generated_tests (
    partition_key  VARCHAR NOT NULL,
    prompt_id      VARCHAR NOT NULL,
    test_id        VARCHAR NOT NULL,
    sample_index   INTEGER NOT NULL,
    test           VARCHAR,
    norm_hash      VARCHAR,
    verified       BOOLEAN,
    reason         VARCHAR,
    detail         VARCHAR,
    multiplicity   INTEGER            -- kept rows: how many of the prompt's test samples contain this test
);
ALTER TABLE generated_tests ADD COLUMN IF NOT EXISTS multiplicity INTEGER;

-- pass_matrix: one row per (prompt, code, test) cell, run in the sandbox. Each task's seed runs
-- with its candidates as the reference row (is_reference: code_id 'seed:<seed_id>', code_index -1;
-- codedpo_assets/reference.py); views over candidates leave it out.
CREATE TABLE IF NOT EXISTS pass_matrix (
    partition_key  VARCHAR NOT NULL,
    prompt_id      VARCHAR NOT NULL,
    code_id        VARCHAR NOT NULL,
    test_id        VARCHAR NOT NULL,
    code_index     INTEGER NOT NULL,
    test_index     INTEGER NOT NULL,
    status         VARCHAR NOT NULL,   -- pass | fail | error | timeout | crash
    passed         BOOLEAN NOT NULL,
    verified       BOOLEAN NOT NULL,
    cpu_time_ns    BIGINT NOT NULL,   -- CPU of the test (threads and child processes), read by the zygote: its share of the batch it ran in
    detail         VARCHAR,
    limit_ms       DOUBLE,            -- CPU limit the cell ran under (calibrated); NULL: not run (see detail)
    fingerprint    VARCHAR,           -- what the code did on the test's input: '=' + its returned value (canonical plain data) or '#' + a hash of a long one; '!' + the outcome without a value ('!pass', '!error:KeyError', '!timeout')
    is_reference   BOOLEAN            -- the task's seed, not a candidate (one row per test; none when the seed cannot run on its own)
);
ALTER TABLE pass_matrix ADD COLUMN IF NOT EXISTS limit_ms DOUBLE;  -- databases made before the column
ALTER TABLE pass_matrix ADD COLUMN IF NOT EXISTS fingerprint VARCHAR;
ALTER TABLE pass_matrix ADD COLUMN IF NOT EXISTS is_reference BOOLEAN;

-- seed_reference: per task, what its seed says of the candidates and tests (codedpo_assets/reference.py).
CREATE TABLE IF NOT EXISTS seed_reference (
    partition_key  VARCHAR NOT NULL,
    prompt_id      VARCHAR NOT NULL,
    seed_id        VARCHAR NOT NULL,
    status         VARCHAR NOT NULL,   -- agrees | overrules | conflicting | drifted | no_tests | not_runnable
    reason         VARCHAR NOT NULL,   -- why, in words
    fidelity       DOUBLE,             -- share of the verified tests the seed passes, on inputs it returns a value for (NULL: none)
    judged         DOUBLE NOT NULL,    -- share of the verified tests on whose input the seed returns a value
    match_mass     DOUBLE NOT NULL,    -- share of the code samples that behave like the seed
    overlap        DOUBLE NOT NULL,    -- the closest behaviour cluster's share of inputs where it returns the seed's value
    seed_cluster   INTEGER,            -- the behaviour cluster the seed belongs to (agrees / overrules)
    decides        BOOLEAN NOT NULL,   -- the seed chose the code and the trusted tests (ranking.use_seed and agrees / overrules)
    chosen_code_id VARCHAR,            -- the code the pairs use as chosen
    confidence     DOUBLE NOT NULL     -- calibrated P(chosen code correct): the seed's model where it decides
);

-- seed_reference_by_source: per seed source, how its tasks' seeds judged (drift per source).
CREATE OR REPLACE VIEW seed_reference_by_source AS
SELECT s.source, count(*) AS tasks, count(*) FILTER (WHERE r.status <> 'not_runnable') AS seed_ran,
       count(*) FILTER (WHERE r.status = 'agrees') AS agrees, count(*) FILTER (WHERE r.status = 'overrules') AS overrules,
       count(*) FILTER (WHERE r.status = 'conflicting') AS conflicting, count(*) FILTER (WHERE r.status = 'drifted') AS drifted,
       count(*) FILTER (WHERE r.status = 'no_tests') AS no_tests, count(*) FILTER (WHERE r.status = 'not_runnable') AS not_runnable,
       round(count(*) FILTER (WHERE r.status IN ('drifted', 'conflicting')) / greatest(count(*) FILTER (WHERE r.status <> 'not_runnable'), 1), 3) AS drift_share,
       round(avg(r.fidelity), 3) AS mean_fidelity, count(*) FILTER (WHERE r.decides) AS seed_decides
FROM seed_reference r JOIN seeds s USING (partition_key, seed_id) GROUP BY s.source ORDER BY s.source;

-- behaviour_clusters: per prompt, programs with identical fingerprints on every test form one
-- behaviour cluster (numbered by their first code, as the rankers number them), with the samples
-- behind them and their outputs on each test, in test order; is_seed_cluster: the cluster the
-- task's seed behaves like (seed_reference.seed_cluster).
CREATE OR REPLACE VIEW behaviour_clusters AS
WITH vectors AS (
    SELECT m.partition_key, m.prompt_id, m.code_index, coalesce(c.multiplicity, 1) AS samples,
           string_agg(coalesce(m.fingerprint, '!' || m.status), ' | ' ORDER BY m.test_index) AS outputs,
           string_agg(CASE WHEN m.passed THEN 'P' ELSE '.' END, '' ORDER BY m.test_index) AS passed_tests
    FROM pass_matrix m LEFT JOIN candidate_code c USING (partition_key, code_id) WHERE NOT coalesce(m.is_reference, false)
    GROUP BY m.partition_key, m.prompt_id, m.code_index, c.multiplicity
), clusters AS (
    SELECT partition_key, prompt_id,
           dense_rank() OVER (PARTITION BY partition_key, prompt_id ORDER BY min(code_index)) - 1 AS cluster,
           count(*) AS programs, sum(samples) AS samples, list(code_index ORDER BY code_index) AS code_indexes,
           length(passed_tests) - length(replace(passed_tests, 'P', '')) AS tests_passed, outputs
    FROM vectors GROUP BY partition_key, prompt_id, outputs, passed_tests
)
SELECT k.*, coalesce(k.cluster = r.seed_cluster, false) AS is_seed_cluster
FROM clusters k LEFT JOIN seed_reference r USING (partition_key, prompt_id);

-- pass_matrix_grid: the wide matrix of a prompt, one row per code, one character per test
-- (P pass, F fail, E error, T timeout, C crash), in test order; the seed's row (is_reference) first.
CREATE OR REPLACE VIEW pass_matrix_grid AS
SELECT prompt_id, code_index, code_id, coalesce(bool_or(is_reference), false) AS is_reference,
       string_agg(CASE status WHEN 'pass' THEN 'P' WHEN 'fail' THEN 'F' WHEN 'error' THEN 'E'
                              WHEN 'timeout' THEN 'T' ELSE 'C' END, '' ORDER BY test_index) AS cells,
       count(*) FILTER (WHERE passed) AS tests_passed
FROM pass_matrix GROUP BY prompt_id, code_index, code_id;

-- pass_matrix_summary: per prompt, how many codes/tests and how the cells ended.
CREATE OR REPLACE VIEW pass_matrix_summary AS
SELECT partition_key, prompt_id, count(DISTINCT code_id) AS codes, count(DISTINCT test_id) AS tests,
       count(*) FILTER (WHERE passed) AS cells_passed, count(*) AS cells,
       round(avg(passed::INT), 3) AS pass_rate,
       count(*) FILTER (WHERE status = 'timeout') AS timeouts, count(*) FILTER (WHERE status = 'crash') AS crashes
FROM pass_matrix WHERE NOT coalesce(is_reference, false) GROUP BY partition_key, prompt_id;

-- verification_scores: per prompt, every ranker's score and rank for each code (and, for
-- self_verification, each test); rankers side by side for ablations (consensus is the default).
CREATE TABLE IF NOT EXISTS verification_scores (
    partition_key  VARCHAR NOT NULL,
    prompt_id      VARCHAR NOT NULL,
    ranker         VARCHAR NOT NULL,
    kind           VARCHAR NOT NULL,   -- code | test
    item_id        VARCHAR NOT NULL,
    item_index     INTEGER NOT NULL,
    score          DOUBLE NOT NULL,
    rank           INTEGER NOT NULL,   -- 1 = best; ties share a rank
    cluster        INTEGER,            -- codes: behaviour cluster (see the behaviour_clusters view)
    chosen         BOOLEAN,            -- codes: the ranker's chosen code (most-written top-scored code)
    confidence     DOUBLE              -- calibrated P(the prompt's chosen code is correct) under this ranker
);
ALTER TABLE verification_scores ADD COLUMN IF NOT EXISTS cluster INTEGER;  -- databases made before the columns
ALTER TABLE verification_scores ADD COLUMN IF NOT EXISTS chosen BOOLEAN;
ALTER TABLE verification_scores ADD COLUMN IF NOT EXISTS confidence DOUBLE;

-- trusted_tests: tests the chosen code of the pairs ranker passes (its whole behaviour cluster does).
CREATE TABLE IF NOT EXISTS trusted_tests (
    partition_key  VARCHAR NOT NULL,
    prompt_id      VARCHAR NOT NULL,
    ranker         VARCHAR NOT NULL,
    test_id        VARCHAR NOT NULL,
    test_index     INTEGER NOT NULL
);

-- timings: CPU time of the codes of the chosen code's behaviour cluster (sandbox timing protocol: read by the zygote,
-- from just before the program loads to 5 ms after its last test; never a figure from the candidate's process).
CREATE TABLE IF NOT EXISTS timings (
    partition_key  VARCHAR NOT NULL,
    prompt_id      VARCHAR NOT NULL,
    code_id        VARCHAR NOT NULL,
    code_index     INTEGER NOT NULL,
    median_ns      DOUBLE NOT NULL,
    mad_ns         DOUBLE NOT NULL,
    repetitions    INTEGER NOT NULL,
    samples_ns     BIGINT[],
    all_passed     BOOLEAN NOT NULL
);

-- preference_pairs: TRL preference rows (prompt, chosen, rejected) with provenance.
CREATE TABLE IF NOT EXISTS preference_pairs (
    partition_key     VARCHAR NOT NULL,
    pair_id           VARCHAR NOT NULL,
    prompt_id         VARCHAR NOT NULL,
    seed_id           VARCHAR NOT NULL,
    kind              VARCHAR NOT NULL,   -- correctness | efficiency
    ranker            VARCHAR NOT NULL,
    prompt            VARCHAR NOT NULL,
    chosen            VARCHAR NOT NULL,
    rejected          VARCHAR NOT NULL,
    chosen_code_id    VARCHAR NOT NULL,
    rejected_code_id  VARCHAR NOT NULL,
    margin            DOUBLE NOT NULL,
    chosen_score      DOUBLE,
    rejected_score    DOUBLE,
    trusted_test_ids  VARCHAR[],
    confidence        DOUBLE,             -- calibrated P(chosen code correct) (codedpo_assets.calibration)
    min_confidence    DOUBLE,             -- the filter threshold the prompt passed (ranking.min_confidence)
    chosen_cluster    INTEGER,            -- behaviour clusters of the two codes (see the behaviour_clusters view)
    rejected_cluster  INTEGER,
    seed_status       VARCHAR             -- the seed's verdict on the task (seed_reference.status; NULL: ranking.use_seed = false)
);
ALTER TABLE preference_pairs ADD COLUMN IF NOT EXISTS confidence DOUBLE;  -- databases made before the columns
ALTER TABLE preference_pairs ADD COLUMN IF NOT EXISTS min_confidence DOUBLE;
ALTER TABLE preference_pairs ADD COLUMN IF NOT EXISTS chosen_cluster INTEGER;
ALTER TABLE preference_pairs ADD COLUMN IF NOT EXISTS rejected_cluster INTEGER;
ALTER TABLE preference_pairs ADD COLUMN IF NOT EXISTS seed_status VARCHAR;

-- preference_pairs_skipped: why a prompt produced no pair of a kind.
CREATE TABLE IF NOT EXISTS preference_pairs_skipped (
    partition_key  VARCHAR NOT NULL,
    prompt_id      VARCHAR NOT NULL,
    kind           VARCHAR NOT NULL,
    reason         VARCHAR NOT NULL,
    confidence     DOUBLE             -- as in preference_pairs (NULL: no candidates or tests)
);
ALTER TABLE preference_pairs_skipped ADD COLUMN IF NOT EXISTS confidence DOUBLE;

-- preference_pairs_stats: pairs by kind and ranker.
CREATE OR REPLACE VIEW preference_pairs_stats AS
SELECT kind, ranker, count(*) AS pairs, count(DISTINCT prompt_id) AS prompts, round(avg(margin), 4) AS avg_margin
FROM preference_pairs GROUP BY kind, ranker ORDER BY kind, ranker;

-- verification_scores_agreement: per pair of rankers, how often they pick the same top code.
CREATE OR REPLACE VIEW verification_scores_agreement AS
WITH top AS (
    SELECT prompt_id, ranker, arg_max(item_index, score) AS best FROM verification_scores WHERE kind = 'code' GROUP BY ALL
)
SELECT a.ranker AS ranker_a, b.ranker AS ranker_b, count(*) AS prompts, round(avg((a.best = b.best)::INT), 3) AS same_top
FROM top a JOIN top b ON a.prompt_id = b.prompt_id AND a.ranker < b.ranker GROUP BY ALL ORDER BY ALL;

-- pipeline_summary: every stage's output across all partitions, in pipeline order: the funnel
-- seeds → prompts → programs → tests → cells → pairs. items: kept rows; dropped: rows with a drop
-- reason (pairs: prompts that yielded none, each counted once whatever its kinds' reasons);
-- not_sampled: rows of the previous stage a configured cap left out (prompts: seeds beyond
-- max_seeds), so for prompts seeds = items + dropped + not_sampled.
CREATE OR REPLACE VIEW pipeline_summary AS
WITH unpaired AS (
    SELECT kind, count(DISTINCT prompt_id) AS n FROM preference_pairs_skipped GROUP BY ALL
    UNION ALL
    SELECT 'any', count(DISTINCT s.prompt_id) FROM preference_pairs_skipped s
    WHERE NOT EXISTS (SELECT 1 FROM preference_pairs p WHERE p.prompt_id = s.prompt_id)
)
SELECT * FROM (
    SELECT 1 AS step, 'seeds' AS stage, 'seeds' AS source_table, count(*) AS items,
           (SELECT count(*) FROM seeds_rejected) AS dropped, 0 AS not_sampled, count(DISTINCT partition_key) AS partitions FROM seeds
    UNION ALL SELECT 2, 'prompts', 'prompts', count(*) FILTER (WHERE reason IS NULL), count(*) FILTER (WHERE reason IS NOT NULL),
                     (SELECT count(*) FROM seeds s WHERE NOT EXISTS (SELECT 1 FROM prompts p WHERE p.seed_id = s.seed_id)),
                     count(DISTINCT partition_key) FROM prompts
    UNION ALL SELECT 3, 'programs', 'candidate_code', count(*) FILTER (WHERE reason IS NULL), count(*) FILTER (WHERE reason IS NOT NULL), 0,
                     count(DISTINCT partition_key) FROM candidate_code
    UNION ALL SELECT 4, 'tests', 'generated_tests', count(*) FILTER (WHERE reason IS NULL), count(*) FILTER (WHERE reason IS NOT NULL), 0,
                     count(DISTINCT partition_key) FROM generated_tests
    UNION ALL SELECT 5, 'cells', 'pass_matrix', count(*), 0, 0, count(DISTINCT partition_key) FROM pass_matrix WHERE NOT coalesce(is_reference, false)
    UNION ALL SELECT 6, 'cells passed', 'pass_matrix', count(*) FILTER (WHERE passed), 0, 0, count(DISTINCT partition_key) FROM pass_matrix
                     WHERE NOT coalesce(is_reference, false)
    UNION ALL SELECT 7, 'prompts with trusted tests', 'trusted_tests', count(DISTINCT prompt_id), 0, 0, count(DISTINCT partition_key) FROM trusted_tests
    UNION ALL SELECT 8, 'pairs', 'preference_pairs', count(*), coalesce((SELECT n FROM unpaired WHERE kind = 'any'), 0), 0,
                     count(DISTINCT partition_key) FROM preference_pairs
    UNION ALL SELECT 9, 'correctness pairs', 'preference_pairs', count(*) FILTER (WHERE kind = 'correctness'),
                     coalesce((SELECT n FROM unpaired WHERE kind = 'correctness'), 0), 0,
                     count(DISTINCT partition_key) FILTER (WHERE kind = 'correctness') FROM preference_pairs
    UNION ALL SELECT 10, 'efficiency pairs', 'preference_pairs', count(*) FILTER (WHERE kind = 'efficiency'),
                     coalesce((SELECT n FROM unpaired WHERE kind = 'efficiency'), 0), 0,
                     count(DISTINCT partition_key) FILTER (WHERE kind = 'efficiency') FROM preference_pairs
) ORDER BY step;

-- dpo_checkpoint: one row per trained checkpoint directory (loadable with from_pretrained offline).
CREATE TABLE IF NOT EXISTS dpo_checkpoint (
    checkpoint_id     VARCHAR PRIMARY KEY,  -- directory name: <arm>-<content hash prefix>
    path              VARCHAR NOT NULL,
    content_hash      VARCHAR NOT NULL,     -- sha256 over every file of the directory
    base_model        VARCHAR NOT NULL,
    arm               VARCHAR NOT NULL,     -- dpo | rpo | kto | sft
    config            JSON NOT NULL,        -- the full training config
    pair_set_version  VARCHAR NOT NULL,     -- preference_pairs_export manifest version trained on
    pairs_snapshot    BIGINT,               -- DuckLake snapshot the exported pairs were read at (NULL on a DuckDB file):
                                            -- SELECT * FROM preference_pairs AT (VERSION => pairs_snapshot)
    pairs             INTEGER NOT NULL,     -- training pairs
    truncated         INTEGER NOT NULL,     -- pairs longer than max_length (truncated, keep_start)
    unusable          INTEGER NOT NULL,     -- pairs whose prompt alone fills max_length (dropped by TRL)
    steps             INTEGER NOT NULL,
    runtime_s         DOUBLE NOT NULL,
    final_loss        DOUBLE,
    run_id            VARCHAR,
    created_at        TIMESTAMP DEFAULT current_timestamp
);
ALTER TABLE dpo_checkpoint ADD COLUMN IF NOT EXISTS pairs_snapshot BIGINT;  -- databases made before the column

-- dpo_checkpoint_curves: training curves (loss, rewards/accuracies, rewards/margins, ...) per step.
CREATE TABLE IF NOT EXISTS dpo_checkpoint_curves (
    checkpoint_id  VARCHAR NOT NULL,
    step           INTEGER NOT NULL,
    metric         VARCHAR NOT NULL,
    value          DOUBLE
);

-- model_evaluation: base model vs checkpoint, one row per (checkpoint, role, metric), with 95%
-- intervals (codedpo_assets/evaluation.py: metric_records). Counts (efficiency_problems) have none.
CREATE TABLE IF NOT EXISTS model_evaluation (
    checkpoint_id     VARCHAR NOT NULL,
    role              VARCHAR NOT NULL,  -- base | checkpoint
    model             VARCHAR NOT NULL,  -- model identity (path@content hash)
    metric            VARCHAR NOT NULL,  -- humaneval_pass@1_greedy, humaneval_pass@k, heldout_*, efficiency_*
    value             DOUBLE,
    n                 INTEGER,           -- problems / held-out pairs / efficiency problems behind the value
    pair_set_version  VARCHAR,
    config            JSON,
    run_id            VARCHAR,
    created_at        TIMESTAMP DEFAULT current_timestamp,
    ci_low            DOUBLE,            -- 95% interval of value
    ci_high           DOUBLE,            -- (NULL: counts, which have no interval)
    ci_method         VARCHAR,           -- wilson (rates of 0/1 items, ties half) | bootstrap (means, pass@k, geometric-mean speed-up)
    change            DOUBLE,            -- checkpoint rows: value - the base value (NULL: no base counterpart, e.g. efficiency_*)
    change_ci_low     DOUBLE,            -- 95% paired-bootstrap interval of change (items resampled jointly)
    change_ci_high    DOUBLE,            -- (NULL where change is NULL)
    verdict           VARCHAR            -- checkpoint rows: better | worse | not enough data (n = N); NULL for counts
);
-- databases made before the interval columns:
ALTER TABLE model_evaluation ADD COLUMN IF NOT EXISTS ci_low DOUBLE;
ALTER TABLE model_evaluation ADD COLUMN IF NOT EXISTS ci_high DOUBLE;
ALTER TABLE model_evaluation ADD COLUMN IF NOT EXISTS ci_method VARCHAR;
ALTER TABLE model_evaluation ADD COLUMN IF NOT EXISTS change DOUBLE;
ALTER TABLE model_evaluation ADD COLUMN IF NOT EXISTS change_ci_low DOUBLE;
ALTER TABLE model_evaluation ADD COLUMN IF NOT EXISTS change_ci_high DOUBLE;
ALTER TABLE model_evaluation ADD COLUMN IF NOT EXISTS verdict VARCHAR;

-- model_evaluation_samples: every HumanEval program generated in an evaluation and its verdict.
CREATE TABLE IF NOT EXISTS model_evaluation_samples (
    checkpoint_id  VARCHAR NOT NULL,
    role           VARCHAR NOT NULL,
    task_id        VARCHAR NOT NULL,
    sample         INTEGER NOT NULL,  -- 0 = greedy, 1.. = sampled
    program        VARCHAR,
    passed         BOOLEAN
);

-- model_evaluation_table: the before/after table (one row per metric), numbers rounded to 3
-- decimals; *_ci are 95% intervals as 'low..high' text (NULL: none, e.g. counts or rows written
-- before intervals were recorded). verdict: better | worse | not enough data (n = N) — read the
-- change only where it is not 'not enough data'.
CREATE OR REPLACE VIEW model_evaluation_table AS
WITH m AS (
    SELECT checkpoint_id, metric, max(n) AS n,
           max(value) FILTER (WHERE role = 'base') AS base,
           max(ci_low) FILTER (WHERE role = 'base') AS base_low,
           max(ci_high) FILTER (WHERE role = 'base') AS base_high,
           max(value) FILTER (WHERE role = 'checkpoint') AS checkpoint,
           max(ci_low) FILTER (WHERE role = 'checkpoint') AS checkpoint_low,
           max(ci_high) FILTER (WHERE role = 'checkpoint') AS checkpoint_high,
           max(change) FILTER (WHERE role = 'checkpoint') AS change,
           max(change_ci_low) FILTER (WHERE role = 'checkpoint') AS change_low,
           max(change_ci_high) FILTER (WHERE role = 'checkpoint') AS change_high,
           max(verdict) FILTER (WHERE role = 'checkpoint') AS verdict
    FROM model_evaluation GROUP BY checkpoint_id, metric
)
SELECT checkpoint_id, metric, n,
       round(base, 3) AS base,
       CASE WHEN base_low IS NOT NULL THEN printf('%.3f..%.3f', base_low, base_high) END AS base_ci,
       round(checkpoint, 3) AS checkpoint,
       CASE WHEN checkpoint_low IS NOT NULL THEN printf('%.3f..%.3f', checkpoint_low, checkpoint_high) END AS checkpoint_ci,
       round(coalesce(change, checkpoint - base), 3) AS change,  -- rows from before the change column: computed here
       CASE WHEN change_low IS NOT NULL THEN printf('%.3f..%.3f', change_low, change_high) END AS change_ci,
       verdict
FROM m ORDER BY checkpoint_id, metric;
