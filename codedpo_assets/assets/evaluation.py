"""Evaluation stage: ``model_evaluation`` — the base model and the latest checkpoint, side by side."""

import json
import math
from pathlib import Path

import dagster as dg
import polars as pl
from pydantic import Field

from codedpo_assets.assets.generation import GenerationReport
from codedpo_assets.assets.metadata import code_version, table_metadata
from codedpo_assets.assets.preferences import ExportConfig
from codedpo_assets.assets.resources import DuckDBStore
from codedpo_assets.assets.training import TRAINING_ASSET_ARGS, dpo_checkpoint
from codedpo_assets.decontam import humaneval_problems
from codedpo_assets.eval_formats import DEFAULT_FORMAT, FORMATS
from codedpo_assets.evaluation import (
    efficiency_items,
    groundtruth_pairs,
    humaneval_scores,
    metric_kind,
    metric_records,
    model_logps,
    preference_items,
    sample_humaneval,
)
from codedpo_assets.generation.ct2 import ENGINES, local_backend
from codedpo_assets.generation.tasks import generate_cached
from codedpo_assets.progress import Progress
from codedpo_assets.train_job import read_pairs
from codedpo_assets.training import chat_example


class EvaluationConfig(dg.Config):
    """HumanEval through our sandbox + held-out preference accuracy + efficiency. Defaults: full HumanEval."""

    limit: int = Field(default=0, description="HumanEval problems to use, in file order (0 = all 164).")
    prompt_format: str = Field(
        default=DEFAULT_FORMAT,
        description=f"How HumanEval is asked: {' | '.join(FORMATS)}. Default chosen from the "
        "measured table in docs/benchmarks.md (the embedded model leaves 82 % "
        "of prefilled signatures empty).",
    )
    n_samples: int = Field(default=10, description="Sampled completions per problem for pass@k (0 = greedy only).")
    ks: list[int] = Field(default=[1, 5, 10], description="k values of pass@k (each <= n_samples).")
    temperature: float = Field(
        default=0.2,
        description="Sampling temperature for pass@k (0.2: 87 % of the embedded model's replies define "
        "the function vs 81 % at 0.8; docs/benchmarks.md).",
    )
    max_new_tokens: int = Field(default=384, description="Longest completion.")
    time_limit_s: float = Field(default=5.0, description="CPU seconds for a problem's check().")
    batch_size: int = Field(default=16, description="Sequences per generate() batch.")
    engine: str = Field(
        default="auto",
        description=f"Engine that samples both models: {' | '.join(ENGINES)} (auto: CTranslate2 on CPU, "
        "transformers on a GPU). Log-probabilities always come from torch.",
    )
    quantization: str = Field(
        default="float32",
        description="ctranslate2: weights of both converted models; float32 keeps what "
        "training changed (int8 rounding could erase a small update).",
    )
    efficiency_repetitions: int = Field(default=5, description="Timed rounds per solution (timing protocol, >= 5).")
    pairs_dir: str = Field(default=ExportConfig().directory, description="Exported pairs (the held-out split is scored).")


# `make run`: greedy on 10 problems per model on int8 (float32 doubles the time on 2 cores; the base
# model's replies are cached for later runs). Enough to run every metric, not to see a change.
QUICK_EVALUATION = {"limit": 10, "n_samples": 0, "ks": [1], "max_new_tokens": 256, "quantization": "int8"}
# benchmarks/loop_gain.py: greedy on all 164 (pass@1 with a paired interval); int8 for time on 2 cores
# (the preference metrics come from torch log-probabilities, not from the int8 engine).
LOOP_EVALUATION = {"limit": 0, "n_samples": 0, "ks": [1], "max_new_tokens": 256, "quantization": "int8"}
EVALUATION_PROFILES = {"quick": QUICK_EVALUATION, "loop": LOOP_EVALUATION}  # over EvaluationConfig's defaults (paper)


def _sample_and_score(db, role: str, path: str, config: EvaluationConfig, problems: list[dict], log):
    """(engine identity, HumanEval samples with verdicts and per-problem items) of one model."""
    backend = local_backend(path, config.engine, quantization=config.quantization, batch_size=config.batch_size)

    def generate(jobs, params):  # cached: the base model's samples are reused by later evaluations
        kind = "greedy" if params.temperature == 0 else "sampled"
        with GenerationReport(f"evaluation {role}: {kind} HumanEval", len(jobs), log) as report:
            return generate_cached(db, backend, jobs, params, report)[0]

    fmt = FORMATS[config.prompt_format]
    greedy, sampled, nonempty = sample_humaneval(
        generate, problems, config.n_samples, config.temperature, config.max_new_tokens, fmt
    )
    checked = Progress(f"evaluation {role}: sandbox", len(problems), "problems", log)
    return backend.identity, humaneval_scores(
        problems, greedy, sampled, config.ks, config.time_limit_s, checked.update, nonempty
    )[1]


# The before/after tables as the asset page shows them: the values with their verdict, and beside
# them their 95 % intervals — two tables that each fit the page (one with everything needs
# horizontal scrolling beside the UI's sidebar). The full columns are in model_evaluation_table.
BEFORE_AFTER_COLUMNS = [
    ("metric", "string", "Metric (higher is better for all)."),
    ("n", "int", "Problems / held-out pairs / efficiency problems behind the values."),
    ("base", "string", "Base model."),
    ("checkpoint", "string", "Trained checkpoint."),
    ("change", "string", "checkpoint − base."),
    (
        "verdict",
        "string",
        "better / worse, or 'not enough data' when the interval spans no change, the sign test disagrees or n < 2.",
    ),
]
INTERVAL_COLUMNS = [
    ("metric", "string", "Metric."),
    ("base", "string", "95 % interval of base (Wilson for values in [0, 1], bootstrap otherwise)."),
    ("checkpoint", "string", "95 % interval of checkpoint."),
    ("change", "string", "95 % interval of the change (Newcombe for values in [0, 1], paired bootstrap otherwise)."),
]


def _number(value: float | None, count: bool) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(int(value)) if count else f"{value:.3f}"


def _table(records: list[dict], columns: list[tuple[str, str, str]]) -> dg.TableMetadataValue:
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind, description=desc) for name, kind, desc in columns])
    return dg.MetadataValue.table(records=[dg.TableRecord(r) for r in records], schema=schema)


def before_after_tables(view: pl.DataFrame) -> dict[str, dg.TableMetadataValue]:
    """The rows of model_evaluation_table for one checkpoint as two Dagster tables (rendered inline):
    ``before_after`` (values, n, verdict) and ``before_after_intervals``."""
    values, intervals = [], []
    for row in view.iter_rows(named=True):
        count = metric_kind(row["metric"]).method is None
        verdict = (row["verdict"] or "").split(" (n = ")[0] or None  # n is its own column
        values.append({"metric": row["metric"], "n": row["n"], **{r: _number(row[r], count) for r in ("base", "checkpoint", "change")},
                       "verdict": verdict})  # fmt: skip
        intervals.append({"metric": row["metric"], **{r: row[f"{r}_ci"] for r in ("base", "checkpoint", "change")}})
    return {"before_after": _table(values, BEFORE_AFTER_COLUMNS), "before_after_intervals": _table(intervals, INTERVAL_COLUMNS)}


@dg.asset(
    deps=[dpo_checkpoint],
    code_version=code_version(__name__, "codedpo_assets.evaluation"),
    metadata=table_metadata("model_evaluation"),
    **TRAINING_ASSET_ARGS,
    description="Base model vs latest dpo_checkpoint: HumanEval pass@1/pass@k (our sandbox), held-out preference accuracy, efficiency.",
)
def model_evaluation(context: dg.AssetExecutionContext, config: EvaluationConfig, store: DuckDBStore) -> dg.MaterializeResult:
    db = store.get()
    latest = db.query(
        "SELECT checkpoint_id, path, base_model, pair_set_version, run_id FROM dpo_checkpoint ORDER BY created_at DESC LIMIT 1"
    ).rows()
    if not latest:
        raise dg.Failure("no dpo_checkpoint recorded: materialize dpo_checkpoint first")
    checkpoint_id, path, base, pair_set, checkpoint_run = latest[0]
    if bad := [k for k in config.ks if not 1 <= k <= max(config.n_samples, 1)]:
        raise dg.Failure(f"model_evaluation.ks: {bad} must be between 1 and n_samples={config.n_samples}")
    if config.prompt_format not in FORMATS:
        raise dg.Failure(f"model_evaluation.prompt_format: {config.prompt_format!r} is not one of {sorted(FORMATS)}")
    problems = humaneval_problems()[: config.limit or None]
    pairs_file = Path(config.pairs_dir).resolve() / "preference_pairs.parquet"
    examples = [chat_example(p) for p in read_pairs(pairs_file, "heldout")] if pairs_file.exists() else []
    sampled = {}
    for role, model_path in (("base", base), ("checkpoint", path)):
        context.log.info(
            f"evaluating {role}: {model_path} on {len(problems)} HumanEval problems ({config.prompt_format}), {len(examples)} held-out pairs"
        )
        sampled[role] = _sample_and_score(db, role, model_path, config, problems, context.log.info)
    (base_id, base_s), (ckpt_id, ckpt_s) = sampled["base"], sampled["checkpoint"]
    truth = [chat_example(p) for p in groundtruth_pairs(problems, base_s)]  # canonical vs the base model's own failing program
    base_lp, ckpt_lp = (model_logps(model_path, examples + truth) for model_path in (base, path))
    # Per-item values (problems, pairs) behind every metric: values, intervals and paired changes come from them.
    base_items, ckpt_items = dict(base_s.items), dict(ckpt_s.items)
    for prefix, part in (("heldout", slice(0, len(examples))), ("groundtruth", slice(len(examples), None))):
        base_items |= preference_items(base_lp[part], base_lp[part], prefix)
        ckpt_items |= preference_items(ckpt_lp[part], base_lp[part], prefix)
    both = [j for j in range(len(problems)) if base_s.greedy_ok[j] and ckpt_s.greedy_ok[j]]
    ckpt_items |= efficiency_items([problems[j] for j in both], [base_s.greedy[j] for j in both], [ckpt_s.greedy[j] for j in both],
                                   repetitions=config.efficiency_repetitions)  # fmt: skip
    settings = json.dumps(config.model_dump(), sort_keys=True)
    models = {"base": base_id, "checkpoint": ckpt_id}
    rows = [{"checkpoint_id": checkpoint_id, "model": models[r["role"]], "pair_set_version": pair_set, "config": settings,
             "run_id": context.run.run_id, **{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}}
            for r in metric_records(base_items, ckpt_items)]  # fmt: skip
    samples = [{"checkpoint_id": checkpoint_id, "role": role, "task_id": p["task_id"], "sample": i, "program": prog, "passed": ok}
               for role, s in (("base", base_s), ("checkpoint", ckpt_s)) for j, p in enumerate(problems)
               for i, (prog, ok) in enumerate(zip([s.greedy[j], *s.sampled[j]], [s.greedy_ok[j], *s.sampled_ok[j]]))]  # fmt: skip
    with db.transaction() as conn:
        for table, data in (("model_evaluation", rows), ("model_evaluation_samples", samples)):
            conn.execute(f"DELETE FROM {table} WHERE checkpoint_id = ?", [checkpoint_id])
            if data:
                conn.register("_rows", pl.DataFrame(data, infer_schema_length=None))
                conn.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
                conn.unregister("_rows")
    view = db.query("SELECT * FROM model_evaluation_table WHERE checkpoint_id = ?", [checkpoint_id])
    values = {
        f"{r['role']}/{r['metric']}": dg.MetadataValue.float(round(float(r["value"]), 4)) for r in rows if r["value"] is not None
    }
    links: dict[str, dg.MetadataValue] = {"checkpoint_path": dg.MetadataValue.path(path)}
    if checkpoint_run:
        links["checkpoint_run"] = dg.MetadataValue.dagster_run(checkpoint_run)
    return dg.MaterializeResult(metadata={**before_after_tables(view), "checkpoint_id": dg.MetadataValue.text(checkpoint_id), **links,
                                          "settings": dg.MetadataValue.json(config.model_dump()),
                                          "humaneval_problems": len(problems), "heldout_pairs": len(examples), "groundtruth_pairs": len(truth),
                                          "prompt_format": config.prompt_format, "efficiency_problems": len(both),
                                          **values})  # fmt: skip
