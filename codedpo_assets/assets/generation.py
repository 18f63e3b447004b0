"""Generation stage: ``prompts`` → ``candidate_code`` and ``generated_tests`` (partitioned like seeds)."""

import os
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import dagster as dg
from pydantic import Field

from codedpo_assets.assets.metadata import code_version, preview, table_metadata, totals
from codedpo_assets.assets.resources import DuckDBStore
from codedpo_assets.assets.seeds import SEED_PARTITIONS
from codedpo_assets.generation.backends import Backend, GenerationError, GenerationParams, OpenAIBackend, embedded_model_dir
from codedpo_assets.generation.ct2 import local_backend
from codedpo_assets.generation.parsing import dedupe, extract_program, extract_tests
from codedpo_assets.generation.tasks import (
    FENCE,
    generate_cached,
    signature,
    solution_messages,
    task_messages,
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


class SamplingConfig(dg.Config):
    """Sampling parameters; defaults are the paper's (temperature 1.5). docs/configuration.md lists the quick profile."""

    temperature: float = Field(default=1.5, description="Sampling temperature (paper: 1.5).")
    top_p: float = Field(default=1.0, description="Nucleus sampling.")
    max_new_tokens: int = Field(default=512, description="Longest completion.")
    max_seeds: int = Field(default=0, description="prompts: seeds per partition to use (0 = all).")
    n_samples: int = Field(
        default=15, description="candidate_code: N solutions; generated_tests: M test samples (paper: 15 + 15)."
    )

    def params(self, stop: tuple[str, ...] = ()) -> GenerationParams:
        return GenerationParams(self.temperature, self.top_p, self.max_new_tokens, stop)


def _code_params(config: SamplingConfig, backend: Backend) -> GenerationParams:
    """Prefilled replies end at the closing fence; unprefilled ones would stop at the opening one."""
    return config.params((FENCE,) if backend.prefills else ())


# `make run` on a 2-core CPU: three seeds per partition, 4 solutions and 4 test samples, short outputs.
QUICK_PROFILE: dict[str, Any] = {"temperature": 0.8, "max_new_tokens": 128, "max_seeds": 3, "n_samples": 4}


def generation_progress(stage: str, total: int, log: Callable[[str], None] | None = None) -> Callable[[int, int], None]:
    """A ``generate_cached`` callback: completions done/total with rate, ETA and tokens/s."""
    progress, tokens, calls = Progress(stage, total, "completions", log), [0], [0]

    def report(done: int, new_tokens: int) -> None:
        calls[0] += 1
        if calls[0] == 1 and done == total:
            return  # all of it cached: nothing to wait for, nothing to report
        tokens[0] += new_tokens
        progress.update(done, f"{tokens[0] / max(time.monotonic() - progress.start, 1e-9):.0f} tokens/s" if tokens[0] else "")

    return report


def _asset_progress(context: dg.AssetExecutionContext, total: int) -> Callable[[int, int], None]:
    return generation_progress(f"{context.asset_key.to_user_string()} {context.partition_key}", total, context.log.info)


def task_jobs(db, key: str, config: SamplingConfig) -> tuple[list[tuple], list[str], list]:
    """Seeds of a partition (up to max_seeds), their signatures and the task-writing jobs."""
    limit = f"LIMIT {int(config.max_seeds)}" if config.max_seeds > 0 else ""
    seeds = db.query(f"SELECT seed_id, symbol, code FROM seeds WHERE partition_key = ? ORDER BY seed_id {limit}", [key]).rows()
    sigs = [signature(code, symbol) for _, symbol, code in seeds]
    return seeds, sigs, [(task_messages(code, sig), 0) for (_, _, code), sig in zip(seeds, sigs)]


def _usable_prompts(db, key: str) -> list[tuple[str, str, str]]:
    return db.query(
        "SELECT prompt_id, entry_point, prompt FROM prompts WHERE partition_key = ? AND reason IS NULL ORDER BY prompt_id", [key]
    ).rows()


def solution_jobs(db, key: str, config: SamplingConfig) -> tuple[list[tuple], list]:
    todo = _usable_prompts(db, key)
    return todo, [(solution_messages(prompt), i) for _, _, prompt in todo for i in range(config.n_samples)]


def test_jobs(db, key: str, config: SamplingConfig) -> tuple[list[tuple], list]:
    todo = _usable_prompts(db, key)
    return todo, [(test_messages(prompt, entry), i) for _, entry, prompt in todo for i in range(config.n_samples)]


def prefetch(db, backend: Backend, keys: list[str], config: SamplingConfig, stage: str) -> int:
    """Fill the generation cache with what ``stage`` ("prompts" or "samples") will ask for in all
    ``keys``, in one call: full batches across partitions instead of a few sequences per partition
    (the per-partition assets then hit the cache). Reports progress; returns model calls made."""
    if stage == "prompts":
        jobs, params = [j for key in keys for j in task_jobs(db, key, config)[2]], config.params()
    else:
        jobs, params = (
            [j for key in keys for fn in (solution_jobs, test_jobs) for j in fn(db, key, config)[1]],
            _code_params(config, backend),
        )
    return generate_cached(db, backend, jobs, params, generation_progress(f"generation: {stage}", len(jobs)))[1]


ASSET_ARGS: dict[str, Any] = {
    "partitions_def": SEED_PARTITIONS,
    "group_name": "generation",
    "kinds": {"python", "duckdb"},
    "owners": ["team:codedpo"],
}
VERSION = code_version(__name__, "codedpo_assets.generation", "codedpo_assets.normalize", "codedpo_assets.sandbox.verdicts")
PREVIEWS = {  # real rows of the partition, kept ones first
    "prompts": "SELECT entry_point, signature, reason, prompt FROM prompts WHERE partition_key = ? ORDER BY reason NULLS FIRST, prompt_id",
    "candidate_code": "SELECT prompt_id, sample_index, multiplicity, reason, code FROM candidate_code WHERE partition_key = ? "
                      "ORDER BY reason NULLS FIRST, prompt_id, sample_index",
    "generated_tests": "SELECT prompt_id, multiplicity, verified, reason, test FROM generated_tests WHERE partition_key = ? "
                       "ORDER BY reason NULLS FIRST, prompt_id, sample_index",
}  # fmt: skip


def _result(db: Store, key: str, table: str, metadata: dict) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={**metadata, **totals(db, table, "WHERE reason IS NULL"), "preview": preview(db, PREVIEWS[table], [key])}
    )


@dg.asset(deps=["seeds"], description="One programming task per seed, written by the model (OSS-Instruct style); entry point = the seed's signature.",
          code_version=VERSION, metadata=table_metadata("prompts"), **ASSET_ARGS)  # fmt: skip
def prompts(
    context: dg.AssetExecutionContext, config: SamplingConfig, store: DuckDBStore, generator: Generator
) -> dg.MaterializeResult:
    db, key = store.get(), context.partition_key
    seeds, sigs, jobs = task_jobs(db, key, config)
    backend = generator.get()
    texts, calls = generate_cached(db, backend, jobs, config.params(), _asset_progress(context, len(jobs)))
    rows = []
    for (seed_id, symbol, _), sig, text in zip(seeds, sigs, texts):
        prompt = task_text(text, sig)
        reason = "empty_output" if not text.strip() else None
        rows.append({"partition_key": key, "prompt_id": content_hash(f"{seed_id}\0{backend.identity}\0{prompt}"), "seed_id": seed_id,
                     "entry_point": symbol, "signature": sig, "prompt": prompt, "model": backend.identity, "reason": reason, "raw": text})  # fmt: skip
    db.replace_partition(key, {"prompts": rows})
    usable = sum(r["reason"] is None for r in rows)
    return _result(
        db, key, "prompts", {"dagster/row_count": len(rows), "usable": usable, "model_calls": calls, "model": backend.identity}
    )


def _sample_code(
    context: dg.AssetExecutionContext, config: SamplingConfig, store: DuckDBStore, generator: Generator, make_jobs: Callable
) -> tuple[Store, str, list[tuple[tuple, list[str]]], int]:
    """A partition's code-sampling jobs through the cache: (db, key, [(prompt row, its n replies)], model calls)."""
    db, key = store.get(), context.partition_key
    todo, jobs = make_jobs(db, key, config)
    backend = generator.get()
    texts, calls = generate_cached(db, backend, jobs, _code_params(config, backend), _asset_progress(context, len(jobs)))
    n = config.n_samples
    return db, key, [(row, texts[p * n : (p + 1) * n]) for p, row in enumerate(todo)], calls


def _write_samples(db: Store, key: str, table: str, rows: list[dict], calls: int) -> dg.MaterializeResult:
    db.replace_partition(key, {table: rows})
    kept = sum(r["reason"] is None for r in rows)
    return _result(db, key, table, {"dagster/row_count": len(rows), "kept": kept, "model_calls": calls})


@dg.asset(deps=[prompts], description="N sampled solutions per prompt; code extracted, deduplicated by normalized AST; drops keep a reason.",
          code_version=VERSION, metadata=table_metadata("candidate_code"), **ASSET_ARGS)  # fmt: skip
def candidate_code(
    context: dg.AssetExecutionContext, config: SamplingConfig, store: DuckDBStore, generator: Generator
) -> dg.MaterializeResult:
    db, key, sampled, calls = _sample_code(context, config, store, generator, solution_jobs)
    rows = []
    for (prompt_id, entry, _), outs in sampled:
        for item, raw in zip(dedupe([extract_program(t, entry, i) for i, t in enumerate(outs)]), outs):
            rows.append({"partition_key": key, "prompt_id": prompt_id, "code_id": content_hash(f"{prompt_id}\0{item.sample_index}"),
                         "sample_index": item.sample_index, "code": item.text or None, "norm_hash": item.norm_hash or None,
                         "multiplicity": item.multiplicity or None, "reason": item.reason or None, "detail": item.detail or None, "raw": raw})  # fmt: skip
    return _write_samples(db, key, "candidate_code", rows, calls)


@dg.asset(deps=[prompts], description="M sampled test sets per prompt, split into standalone asserts calling the entry point; deduplicated; drops keep a reason.",
          code_version=VERSION, metadata=table_metadata("generated_tests"), **ASSET_ARGS)  # fmt: skip
def generated_tests(
    context: dg.AssetExecutionContext, config: SamplingConfig, store: DuckDBStore, generator: Generator
) -> dg.MaterializeResult:
    db, key, sampled, calls = _sample_code(context, config, store, generator, test_jobs)
    rows = []
    for (prompt_id, entry, _), outs in sampled:
        items = dedupe([t for i, out in enumerate(outs) for t in extract_tests(out, entry, i)])
        for n, item in enumerate(items):
            rows.append({"partition_key": key, "prompt_id": prompt_id, "test_id": content_hash(f"{prompt_id}\0{n}\0{item.text}"),
                         "sample_index": item.sample_index, "test": item.text or None, "norm_hash": item.norm_hash or None,
                         "verified": parse_test(item.text).verified if item.text else None, "multiplicity": item.multiplicity or None,
                         "reason": item.reason or None, "detail": item.detail or None})  # fmt: skip
    return _write_samples(db, key, "generated_tests", rows, calls)


SAMPLING_ASSETS = (prompts, candidate_code, generated_tests)  # the assets configured by SamplingConfig
