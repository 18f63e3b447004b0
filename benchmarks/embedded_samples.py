"""The embedded model's own samples of HumanEval problems, in the real-samples format: resumable.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/embedded_samples.py [--problems even|odd|all]
     [--solutions 10] [--tests 10] [--limit N] [--out data/embedded-samples]
then, to measure pair precision and yield on them as on any other split:
CODEDPO_REAL_SAMPLES=data/embedded-samples/<file> .venv/bin/python benchmarks/ranking_real_bench.py

Each problem is asked as the pipeline asks a task (``solution_messages`` / ``test_messages`` of
the product's ``generation.tasks``: its chat template, prefill and stop strings, the quick
profile's temperature), on the product's default engine, through ``generate_cached`` into a DuckDB
cache beside the output: an interrupted run, rerun, makes no model call for what it already has
(work goes in chunks of ``--chunk`` problems). Output, for ``benchmarks/real_samples.py``:
``humaneval-<model>-<problems>.jsonl.gz`` with task_id, entry_point, solution_prompt (empty: each
sample is the whole reply), solution_samples, test_prompt, test_samples (each reply after its
prefilled ``assert ``), and ``*.raw.jsonl.gz`` with the replies as the model wrote them. The odd
problems are a held-out check: ``--problems even`` (the default) never asks for them.
"""

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codedpo_assets.assets.generation import QUICK_PROFILE
from codedpo_assets.decontam import humaneval_problems
from codedpo_assets.generation.backends import GenerationParams
from codedpo_assets.generation.ct2 import local_backend
from codedpo_assets.generation.embedded import EMBEDDED, embedded_model_dir
from codedpo_assets.generation.tasks import FENCE, PROGRAM_STOP, TEST_STOP, generate_cached, solution_messages, test_messages
from codedpo_assets.progress import Progress
from codedpo_assets.store import Store

TEST_PREFIX = f"{FENCE}python\nassert "  # the test reply's prefill up to its first assert's expression


def selected(which: str) -> list[dict]:
    problems = humaneval_problems()
    number = {"even": lambda n: n % 2 == 0, "odd": lambda n: n % 2 == 1, "all": lambda n: True}[which]
    return [p for p in problems if number(int(p["task_id"].split("/")[1]))]


def task(problem: dict) -> str:
    return f"Complete the following Python function.\n{FENCE}python\n{problem['prompt'].rstrip()}\n{FENCE}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", choices=("even", "odd", "all"), default="even")
    parser.add_argument("--solutions", type=int, default=10)
    parser.add_argument("--tests", type=int, default=10)
    parser.add_argument("--limit", type=int, default=0, help="the first n selected problems only (0: all)")
    parser.add_argument("--chunk", type=int, default=8, help="problems per generation call (what an interrupt can lose)")
    parser.add_argument("--max-new-tokens", type=int, default=320)
    parser.add_argument("--out", default="data/embedded-samples")
    args = parser.parse_args()
    problems = selected(args.problems)[: args.limit or None]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store, backend = Store(out / "generation-cache.duckdb"), local_backend(embedded_model_dir())
    temperature = QUICK_PROFILE["temperature"]
    solve = GenerationParams(temperature, 1.0, args.max_new_tokens, PROGRAM_STOP)
    write = GenerationParams(temperature, 1.0, args.max_new_tokens, TEST_STOP)
    progress = Progress("embedded samples", len(problems), "problems", lambda line: print(line, flush=True))
    rows, raw, calls, started = [], [], 0, time.monotonic()
    for start in range(0, len(problems), args.chunk):
        chunk = problems[start : start + args.chunk]
        sol_jobs = [(solution_messages(task(p)), i) for p in chunk for i in range(args.solutions)]
        test_jobs = [(test_messages(task(p), p["entry_point"]), i) for p in chunk for i in range(args.tests)]
        sols, made = generate_cached(store, backend, sol_jobs, solve)
        tests, made_too = generate_cached(store, backend, test_jobs, write)
        calls += made + made_too
        for k, p in enumerate(chunk):
            s = sols[k * args.solutions : (k + 1) * args.solutions]
            t = tests[k * args.tests : (k + 1) * args.tests]
            rows.append({"task_id": p["task_id"], "entry_point": p["entry_point"], "solution_prompt": "", "solution_samples": s,
                         "test_prompt": repr(test_jobs[k * args.tests][0]), "test_samples": [x.removeprefix(TEST_PREFIX) for x in t]})  # fmt: skip
            raw.append({"task_id": p["task_id"], "solution_messages": sol_jobs[k * args.solutions][0], "solutions": s,
                        "test_messages": test_jobs[k * args.tests][0], "tests": t, "model": backend.identity})  # fmt: skip
        progress.update(len(rows), f"{calls} model calls")
    name = f"humaneval-{EMBEDDED.name}-{args.problems}" + (f"-first{args.limit}" if args.limit else "")
    for suffix, data in ((".jsonl.gz", rows), (".raw.jsonl.gz", raw)):
        with gzip.open(out / f"{name}{suffix}", "wt", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in data)
    print(f"embedded-samples: {len(rows)} problems x ({args.solutions} solutions + {args.tests} test samples), {calls} model calls, "
          f"{time.monotonic() - started:.0f} s; {out / (name + '.jsonl.gz')}")  # fmt: skip


if __name__ == "__main__":
    main()
