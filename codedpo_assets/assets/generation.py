"""Generation stage: ``prompts`` → ``candidate_code`` and ``generated_tests`` (partitioned like seeds)."""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import dagster as dg
from pydantic import Field

from codedpo_assets.assets.metadata import code_preview, code_version, previews, table_metadata, whole_asset
from codedpo_assets.assets.resources import DuckDBStore
from codedpo_assets.assets.seeds import SEED_PARTITIONS
from codedpo_assets.generation.backends import Backend, GenerationError, GenerationParams, OpenAIBackend
from codedpo_assets.generation.ct2 import local_backend
from codedpo_assets.generation.embedded import embedded_model_dir
from codedpo_assets.generation.parsing import dedupe, extract_program, extract_tests
from codedpo_assets.generation.tasks import (
    PROGRAM_STOP,
    TASK_STOP,
    TEST_STOP,
    generate_cached,
    signature,
    solution_messages,
    task_messages,
    task_statement,
    task_text,
    test_messages,
)
from codedpo_assets.normalize import content_hash
from codedpo_assets.progress import Progress
from codedpo_assets.sandbox.verdicts import parse_test
from codedpo_assets.store import Store

BACKENDS = ("embedded", "transformers", "openai")


@lru_cache(maxsize=4)
def _backend(kind: str, model_path: str, base_url: str, model: str, api_key: str, concurrency: int, batch_size: int, prefill: bool,
             engine: str, quantization: str) -> Backend:  # fmt: skip
    if kind == "embedded":
        return local_backend(embedded_model_dir(), engine, quantization=quantization, batch_size=batch_size)
    if kind == "transformers":
        if not model_path:
            raise GenerationError("generator.model_path: required for backend 'transformers' (a local dir or Hub id)")
        return local_backend(
            model_path, "transformers" if engine == "auto" else engine, quantization=quantization, batch_size=batch_size
        )
    if kind == "openai":
        if not base_url or not model:
            raise GenerationError("generator.base_url and generator.model: required for backend 'openai'")
        return OpenAIBackend(base_url, model, api_key=api_key, concurrency=concurrency, prefill=prefill)
    raise GenerationError(f"generator.backend: {kind!r} is not one of {BACKENDS}")


class Generator(dg.ConfigurableResource):
    """Which model writes prompts, candidates and tests. Default: the embedded SmolLM2-135M-Instruct,
    sampled by CTranslate2 int8 on CPU (transformers on a GPU)."""

    backend: str = Field(default="embedded", description="embedded | transformers | openai")
    model_path: str = Field(default="", description="transformers: local checkpoint dir or Hub id.")
    base_url: str = Field(default="", description="openai: server URL, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(default="", description="openai: served model name.")
    api_key: str = Field(default="", description="openai: API key (use an EnvVar).")
    concurrency: int = Field(
        default=64,
        description="openai: requests in flight; size it to the server (vLLM batches what is in flight: "
        "tens to hundreds on a GPU server).",
    )
    prefill: bool = Field(
        default=False,
        description="openai: continue a prefilled reply (`continue_final_message`: vLLM, SGLang). Local backends always prefill.",
    )
    batch_size: int = Field(
        default=16, description="transformers/embedded: sequences per generate() batch (16: 6.4x one-at-a-time on 2 CPU cores)."
    )
    engine: str = Field(
        default="auto",
        description="embedded/transformers: auto | ctranslate2 | transformers. auto: CTranslate2 (int8, ~3x) for "
        "the embedded model on CPU; transformers on a GPU and for a model_path.",
    )
    quantization: str = Field(
        default="int8", description="ctranslate2: int8 | int8_float32 | float32 (the converted model's weights)."
    )

    def get(self) -> Backend:
        return _backend(
            self.backend,
            self.model_path,
            self.base_url,
            self.model,
            self.api_key,
            self.concurrency,
            self.batch_size,
            self.prefill,
            self.engine,
            self.quantization,
        )


GENERATOR_ENV = {  # environment overrides of the Generator resource (CLI, sensor-driven runs and UI alike)
    "backend": "CODEDPO_GENERATOR",
    "model_path": "CODEDPO_MODEL_PATH",
    "base_url": "CODEDPO_OPENAI_BASE_URL",
    "model": "CODEDPO_OPENAI_MODEL",
    "api_key": "CODEDPO_OPENAI_API_KEY",
    "concurrency": "CODEDPO_OPENAI_CONCURRENCY",
    "engine": "CODEDPO_ENGINE",
}


def generator_from_env() -> Generator:
    """``Generator`` with fields taken from the CODEDPO_* variables above where set."""
    overrides: dict[str, Any] = {field: os.environ[var] for field, var in GENERATOR_ENV.items() if os.environ.get(var)}
    return Generator(**overrides)  # pydantic turns the strings into the fields' types


# The sampling profiles. paper: the paper's values; quick: `make run` on a 2-core CPU with the
# embedded Qwen2.5-Coder-0.5B (~48 tok/s): three seeds per partition (24 tasks from the 8 default
# stdlib modules), 4 solutions and 4 test samples each (4 x 5 asserts), <= 160 tokens — a function
# without its docstring fits (median ~100), and generation stays within ~6 of make run's 15 minutes.
SAMPLING_PROFILES: dict[str, dict[str, Any]] = {
    "paper": {"temperature": 1.5, "top_p": 1.0, "max_new_tokens": 512, "max_seeds": 0, "n_samples": 15},
    "quick": {"temperature": 0.8, "top_p": 1.0, "max_new_tokens": 160, "max_seeds": 3, "n_samples": 4},
    # benchmarks/loop_gain.py on 2 CPU cores: the quick sampling over many more seed modules (its
    # sources), four tasks per module at most.
    "loop": {"temperature": 0.8, "top_p": 1.0, "max_new_tokens": 160, "max_seeds": 4, "n_samples": 4},
}
QUICK_PROFILE = SAMPLING_PROFILES["quick"]
PROFILE_TAG = "profile"  # the run tag naming the profile; each job sets it, a run without one gets "paper"


def run_profile(context: dg.AssetExecutionContext) -> str:
    return context.run.tags.get(PROFILE_TAG, "paper")


def _by_profile(name: str, what: str) -> Any:
    """A field left empty takes the run's profile value: a launchpad then shows no other profile's numbers."""
    values = ", ".join(f"{profile} {values[name]}" for profile, values in SAMPLING_PROFILES.items())
    return Field(default=None, description=f"{what} Empty: the run's profile (tag `{PROFILE_TAG}`): {values}.")


@dataclass(frozen=True)
class Sampling:
    """The sampling values a run uses: its config over its profile."""

    temperature: float
    top_p: float
    max_new_tokens: int
    max_seeds: int
    n_samples: int

    def params(self, stop: tuple[str, ...] = ()) -> GenerationParams:
        return GenerationParams(self.temperature, self.top_p, self.max_new_tokens, stop)


class SamplingConfig(dg.Config):
    """Sampling parameters. Each field left empty takes the run's profile (``SAMPLING_PROFILES``:
    paper — the paper's values, what automation's build_pairs runs — or quick, build_pairs_quick)."""

    temperature: float | None = _by_profile("temperature", "Sampling temperature.")
    top_p: float | None = _by_profile("top_p", "Nucleus sampling.")
    max_new_tokens: int | None = _by_profile("max_new_tokens", "Longest completion.")
    max_seeds: int | None = _by_profile("max_seeds", "prompts: seeds per partition to use (0 = all).")
    n_samples: int | None = _by_profile("n_samples", "candidate_code: N solutions; generated_tests: M test samples.")

    def resolved(self, profile: str) -> Sampling:
        if profile not in SAMPLING_PROFILES:
            raise dg.Failure(f"run tag {PROFILE_TAG}={profile!r}: choose one of {sorted(SAMPLING_PROFILES)}")
        given = self.model_dump()
        return Sampling(**{k: v if given[k] is None else given[k] for k, v in SAMPLING_PROFILES[profile].items()})


def _code_params(sampling: Sampling, backend: Backend, stop: tuple[str, ...]) -> GenerationParams:
    """Prefilled replies end at ``stop`` (the closing fence first); unprefilled ones would stop at the opening one."""
    return sampling.params(stop if backend.prefills else ())


class GenerationReport:
    """A ``generate_cached`` callback: completions done/total with rate, ETA and tokens/s. Used as a
    context, it also repeats its line every few seconds while a batch runs."""

    def __init__(self, stage: str, total: int, log: Callable[[str], None] | None = None) -> None:
        self.progress, self.total, self.tokens, self.calls = Progress(stage, total, "completions", log), total, 0, 0

    def __call__(self, done: int, new_tokens: int) -> None:
        self.calls += 1
        if self.calls == 1 and done == self.total:
            return  # all of it cached: nothing to wait for, nothing to report
        self.tokens += new_tokens
        elapsed = max(time.monotonic() - self.progress.start, 1e-9)
        self.progress.update(done, f"{self.tokens / elapsed:.0f} tokens/s" if self.tokens else "")

    def __enter__(self) -> "GenerationReport":
        self.progress.keep_alive()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.close()


def _asset_progress(context: dg.AssetExecutionContext, total: int) -> GenerationReport:
    keys = context.partition_keys
    where = keys[0] if len(keys) == 1 else f"{len(keys)} partitions"
    return GenerationReport(f"{context.asset_key.to_user_string()} {where}", total, context.log.info)


# Which seeds a capped profile takes first: public functions (a private helper's contract is often
# implicit in its callers, and its tasks get tests that call the module's other functions), then by id.
SEED_ORDER = "starts_with(symbol, '_'), seed_id"


def task_jobs(db, key: str, config: Sampling) -> tuple[list[tuple], list[str], list]:
    """Seeds of a partition (up to max_seeds), their signatures and the task-writing jobs."""
    limit = f"LIMIT {int(config.max_seeds)}" if config.max_seeds > 0 else ""
    sql = f"SELECT seed_id, symbol, code FROM seeds WHERE partition_key = ? ORDER BY {SEED_ORDER} {limit}"
    seeds = db.query(sql, [key]).rows()
    sigs = [signature(code, symbol) for _, symbol, code in seeds]
    return seeds, sigs, [(task_messages(code, sig), 0) for (_, _, code), sig in zip(seeds, sigs)]


def _usable_prompts(db, key: str) -> list[tuple[str, str, str]]:
    return db.query(
        "SELECT prompt_id, entry_point, prompt FROM prompts WHERE partition_key = ? AND reason IS NULL ORDER BY prompt_id", [key]
    ).rows()


def solution_jobs(db, key: str, config: Sampling) -> tuple[list[tuple], list]:
    todo = _usable_prompts(db, key)
    return todo, [(solution_messages(prompt), i) for _, _, prompt in todo for i in range(config.n_samples)]


def test_jobs(db, key: str, config: Sampling) -> tuple[list[tuple], list]:
    todo = _usable_prompts(db, key)
    return todo, [(test_messages(prompt, entry), i) for _, entry, prompt in todo for i in range(config.n_samples)]


ASSET_ARGS: dict[str, Any] = {
    "partitions_def": SEED_PARTITIONS,
    "group_name": "generation",
    "kinds": {"python", "duckdb"},
    "owners": ["team:codedpo"],
    # A backfill of many partitions is one run: every partition's requests go to the model in one
    # batched call (a few sequences per partition would leave a CPU engine or a vLLM server idle),
    # and the run's logs and timeline show the generation. One partition per run works the same.
    "backfill_policy": dg.BackfillPolicy.single_run(),
}
VERSION = code_version(__name__, "codedpo_assets.generation", "codedpo_assets.normalize", "codedpo_assets.sandbox.verdicts")
PREVIEWS = {  # real rows, kept ones first; {partition}: the whole asset or one partition
    "prompts": "SELECT partition_key, entry_point, signature, reason, cleaned, prompt FROM prompts WHERE {partition} "
    "ORDER BY reason NULLS FIRST, partition_key, prompt_id",
    "candidate_code": "SELECT partition_key, prompt_id, sample_index, multiplicity, reason, code FROM candidate_code WHERE {partition} "
    "ORDER BY reason NULLS FIRST, partition_key, prompt_id, sample_index",
    "generated_tests": "SELECT partition_key, prompt_id, multiplicity, verified, reason, test FROM generated_tests WHERE {partition} "
    "ORDER BY reason NULLS FIRST, partition_key, prompt_id, sample_index",
}
CODE = {  # the kept programs and tests as code (a table cell flattens newlines)
    "candidate_code": "SELECT prompt_id, sample_index, multiplicity, code FROM candidate_code WHERE partition_key = ? AND reason IS NULL "
                      "ORDER BY prompt_id, sample_index",
    "generated_tests": "SELECT prompt_id, multiplicity, test FROM generated_tests WHERE partition_key = ? AND reason IS NULL "
                       "ORDER BY prompt_id, sample_index",
}  # fmt: skip


def _generate(
    context: dg.AssetExecutionContext, db: Store, backend: Backend, jobs: dict[str, list], params: GenerationParams
) -> dict[str, list[str]]:
    """Every partition's jobs in one cached, batched call; the replies split back by partition."""
    flat = [j for key in jobs for j in jobs[key]]
    with _asset_progress(context, len(flat)) as report:
        texts, calls = generate_cached(db, backend, flat, params, report)
    context.log.info(
        f"{len(flat)} completions for {len(jobs)} partitions: {calls} model calls ({len(flat) - calls} from the cache)"
    )
    out, start = {}, 0
    for key, items in jobs.items():
        out[key], start = texts[start : start + len(items)], start + len(items)
    return out


def _written(context: dg.AssetExecutionContext, db: Store, key: str, table: str, rows: list[dict], **extra: Any) -> None:
    """Replace one partition's rows and attach its own metadata to its materialization."""
    db.replace_partition(key, {table: rows})
    kept = sum(r["reason"] is None for r in rows)
    code = {"partition_code": code_preview(db, CODE[table], [key], title=f"Kept rows of {key}")} if table in CODE else {}
    context.add_asset_metadata(
        {
            "kept": kept,
            **extra,
            **whole_asset(db, table, key, len(rows), "reason IS NULL"),
            **previews(db, PREVIEWS[table], key),
            **code,
        },
        partition_key=key,
    )


@dg.asset(deps=["seeds"], description="One programming task per seed, written by the model (OSS-Instruct style); entry point = the seed's signature.",
          code_version=VERSION, metadata=table_metadata("prompts"), **ASSET_ARGS)  # fmt: skip
def prompts(
    context: dg.AssetExecutionContext, config: SamplingConfig, store: DuckDBStore, generator: Generator
) -> dg.MaterializeResult:
    db, backend, sampling = store.get(), generator.get(), config.resolved(run_profile(context))
    tasks = {key: task_jobs(db, key, sampling) for key in context.partition_keys}
    texts = _generate(context, db, backend, {key: jobs for key, (_, _, jobs) in tasks.items()}, sampling.params(TASK_STOP))
    for key, (seeds, sigs, _) in tasks.items():
        rows = []
        for (seed_id, symbol, _), sig, text in zip(seeds, sigs, texts[key]):
            statement, cleaned, leak = task_statement(text)
            prompt = task_text(statement, sig)
            reason = "empty_output" if not text.strip() else leak
            rows.append({"partition_key": key, "prompt_id": content_hash(f"{seed_id}\0{backend.identity}\0{prompt}"), "seed_id": seed_id,
                         "entry_point": symbol, "signature": sig, "prompt": prompt, "model": backend.identity, "reason": reason, "raw": text,
                         "cleaned": cleaned})  # fmt: skip
        _written(context, db, key, "prompts", rows, seeds_over_cap=_over_cap(db, key, len(seeds)))
    return dg.MaterializeResult(metadata={"model": backend.identity})


def _over_cap(db: Store, key: str, sampled: int) -> int:
    """Seeds of the partition that ``max_seeds`` left out (no prompt was written for them)."""
    return int(db.query("SELECT count(*) FROM seeds WHERE partition_key = ?", [key]).item()) - sampled


def _sample(
    context: dg.AssetExecutionContext,
    config: SamplingConfig,
    store: DuckDBStore,
    generator: Generator,
    make_jobs: Callable,
    stop: tuple[str, ...],
    table: str,
    rows_of: Callable[[str, str, str, list[str]], list[dict]],
) -> dg.MaterializeResult:
    """Every partition's code-sampling jobs in one call through the cache, then each partition's rows
    (``rows_of(partition, prompt_id, entry point, its n replies)``) written with its own metadata."""
    db, backend, sampling = store.get(), generator.get(), config.resolved(run_profile(context))
    planned = {key: make_jobs(db, key, sampling) for key in context.partition_keys}
    texts = _generate(
        context, db, backend, {key: jobs for key, (_, jobs) in planned.items()}, _code_params(sampling, backend, stop)
    )
    n = sampling.n_samples
    for key, (todo, _) in planned.items():
        rows = [
            row
            for p, (prompt_id, entry, _) in enumerate(todo)
            for row in rows_of(key, prompt_id, entry, texts[key][p * n : (p + 1) * n])
        ]
        _written(context, db, key, table, rows)
    return dg.MaterializeResult()


def _program_rows(key: str, prompt_id: str, entry: str, outs: list[str]) -> list[dict]:
    return [{"partition_key": key, "prompt_id": prompt_id, "code_id": content_hash(f"{prompt_id}\0{item.sample_index}"),
             "sample_index": item.sample_index, "code": item.text or None, "norm_hash": item.norm_hash or None,
             "multiplicity": item.multiplicity or None, "reason": item.reason or None, "detail": item.detail or None, "raw": raw}
            for item, raw in zip(dedupe([extract_program(t, entry, i) for i, t in enumerate(outs)]), outs)]  # fmt: skip


def _test_rows(key: str, prompt_id: str, entry: str, outs: list[str]) -> list[dict]:
    items = dedupe([t for i, out in enumerate(outs) for t in extract_tests(out, entry, i)])
    return [{"partition_key": key, "prompt_id": prompt_id, "test_id": content_hash(f"{prompt_id}\0{n}\0{item.text}"),
             "sample_index": item.sample_index, "test": item.text or None, "norm_hash": item.norm_hash or None,
             "verified": parse_test(item.text).verified if item.text else None, "multiplicity": item.multiplicity or None,
             "reason": item.reason or None, "detail": item.detail or None}
            for n, item in enumerate(items)]  # fmt: skip


@dg.asset(deps=[prompts], description="N sampled solutions per prompt; code extracted, deduplicated by normalized AST; drops keep a reason.",
          code_version=VERSION, metadata=table_metadata("candidate_code"), **ASSET_ARGS)  # fmt: skip
def candidate_code(
    context: dg.AssetExecutionContext, config: SamplingConfig, store: DuckDBStore, generator: Generator
) -> dg.MaterializeResult:
    return _sample(context, config, store, generator, solution_jobs, PROGRAM_STOP, "candidate_code", _program_rows)


@dg.asset(deps=[prompts], description="M sampled test sets per prompt, split into standalone asserts calling the entry point; deduplicated; drops keep a reason.",
          code_version=VERSION, metadata=table_metadata("generated_tests"), **ASSET_ARGS)  # fmt: skip
def generated_tests(
    context: dg.AssetExecutionContext, config: SamplingConfig, store: DuckDBStore, generator: Generator
) -> dg.MaterializeResult:
    return _sample(context, config, store, generator, test_jobs, TEST_STOP, "generated_tests", _test_rows)


SAMPLING_ASSETS = (prompts, candidate_code, generated_tests)  # the assets configured by SamplingConfig
