"""Partitions in parallel: the `build_pairs` chain over N seed partitions with 1 vs 2 worker processes.

Run: .venv/bin/python benchmarks/parallel_bench.py [N] [--latency S] [--executor celery]   (default N = 8, S = 1.0)

Each worker is a separate OS process (what a Celery worker or a Kubernetes pod is) that executes
`build_pairs` (seeds → … → preference_pairs) for its share of the partitions, one run per
partition, all writing the same store. The model is the tests' scripted OpenAI-compatible server
with S seconds of latency per request (a model server busy generating), answering each seed file
with its own task so nothing is shared through the generation cache. Each arm starts from an empty
database and Dagster home; the figure is partitions per minute, side by side in one run. Before
this change every database-touching step sat in one Dagster pool of limit 1, so two workers could
not overlap at all.

``--executor celery``: the distributed shape. A throwaway PostgreSQL holds the Dagster instance
and the store (DuckLake catalog; data files in a local data path), a throwaway redis-server is
the Celery broker; a worker is a Celery worker process (`celery -A dagster_celery.app worker
--pool solo`), and all N runs are launched at once (`dagster job execute`, one coordinator process
per run, as a run launcher would), their steps queued to whichever worker is free.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from conftest import FakeServer
from incremental_bench import workspace

STARTED = time.perf_counter()
RUN_CONFIG = {"ops": {n: {"config": {"n_samples": 4}} for n in ("prompts", "candidate_code", "generated_tests")}}


class PerFileServer(FakeServer):
    """The scripted server, with a latency per request, and each seed file gets its own task text
    (so its own samples)."""

    def __init__(self, latency_s: float) -> None:
        super().__init__()
        self.latency_s = latency_s

    def answer(self, prompt: str) -> str:
        time.sleep(self.latency_s)  # in the request's own server thread: requests overlap as on a real server
        if "programming problem" in prompt:
            match = re.search(r"# file (\d+)", prompt)
            return f"Return the sum of two integers a and b (file {match.group(1) if match else '?'})."
        return super().answer(prompt)


def worker(keys: list[str]) -> None:
    """Build each partition with the build_pairs_quick job (run config below), in this process, one run after the other."""
    import dagster as dg

    import definitions

    print(f"ready after {time.perf_counter() - STARTED:.1f} s", flush=True)
    job = definitions.defs.resolve_job_def(
        "build_pairs_quick"
    )  # build_pairs (automation's) cannot execute_in_process: it carries an automation condition
    instance = dg.DagsterInstance.get()
    for key in keys:
        t = time.perf_counter()
        result = job.execute_in_process(partition_key=key, instance=instance, run_config=RUN_CONFIG, raise_on_error=False)
        if not result.success:
            raise SystemExit(f"{key}: run {result.run_id} failed")
        print(f"{key} {time.perf_counter() - t:.1f}", flush=True)


def celery_arm(n: int, workers: int, latency: float) -> float:
    """Seconds for n partitions on ``workers`` Celery workers, instance + store in PostgreSQL."""
    import uuid

    from servers import postgres_server, redis_server

    work, _, env, server = workspace(n, f"codedpo-celery-{workers}-")
    server.close()
    server = PerFileServer(latency_s=latency)
    keys = [f"local:m{i:03d}.py" for i in range(n)]
    with postgres_server() as pg, redis_server(work) as redis:
        tag = uuid.uuid4().hex[:8]
        pg.create_database(f"dagster_{tag}")
        (Path(env["DAGSTER_HOME"]) / "dagster.yaml").write_text(
            f'storage:\n  postgres:\n    postgres_url: "{pg.sqlalchemy_url(f"dagster_{tag}")}"\ntelemetry:\n  enabled: false\n'
        )
        (work / "dagster_celery_config.py").write_text(f"broker_url = {redis!r}\nresult_backend = {redis!r}\n")
        env.update({"CODEDPO_OPENAI_BASE_URL": server.url, "CODEDPO_CATALOG": pg.create_database(f"lake_{tag}"), "CODEDPO_DATA_PATH": str(work / "lake"),
                    "CODEDPO_EXECUTOR": "celery", "PYTHONPATH": f"{REPO}{os.pathsep}{work}"})  # fmt: skip
        env.pop("CODEDPO_DB", None)
        (work / "run.yaml").write_text(json.dumps({**RUN_CONFIG, "execution": {"config": {"broker": redis, "backend": redis}}}))
        subprocess.run([sys.executable, "-c", "import dagster as dg, sys; dg.DagsterInstance.get().add_dynamic_partitions('seeds', sys.argv[1:])", *keys],
                       cwd=REPO, env=env, check=True)  # fmt: skip
        pool = [subprocess.Popen([sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker", "--pool", "solo", "--prefetch-multiplier=1",
                                  "-n", f"w{i}@%h"], cwd=work, env=env, stdout=open(work / f"celery{i}.log", "w"), stderr=subprocess.STDOUT)
                for i in range(workers)]  # fmt: skip
        try:
            time.sleep(5)  # workers connected before the clock starts
            t = time.perf_counter()
            runs = [subprocess.Popen([sys.executable, "-m", "dagster", "job", "execute", "-m", "definitions", "-j", "build_pairs", "-c", str(work / "run.yaml"),
                                      "--tags", json.dumps({"dagster/partition": key})], cwd=REPO, env=env,
                                     stdout=open(work / f"run{i}.log", "w"), stderr=subprocess.STDOUT) for i, key in enumerate(keys)]  # fmt: skip
            failed = [i for i, r in enumerate(runs) if r.wait(timeout=3600)]
            wall = time.perf_counter() - t
            if failed:
                raise SystemExit(f"runs {failed} failed; see {work}")
            from codedpo_assets.store import Store

            built = (
                Store(catalog=env["CODEDPO_CATALOG"], data_path=env["CODEDPO_DATA_PATH"])
                .query("SELECT count(DISTINCT partition_key) FROM preference_pairs")
                .item()
            )
            if built != n:
                raise SystemExit(f"{built} of {n} partitions have pairs; see {work}")
            return wall
        finally:
            for p in pool:
                p.terminate()
            for p in pool:
                p.wait(timeout=30)
            server.close()
    shutil.rmtree(work, ignore_errors=True)


def arm(n: int, workers: int, latency: float) -> float:
    """Seconds to build all n partitions with ``workers`` processes, from an empty store."""
    work, _, env, server = workspace(n, f"codedpo-parallel-{workers}-")
    server.close()
    server = PerFileServer(latency_s=latency)
    env["CODEDPO_OPENAI_BASE_URL"] = server.url
    keys = [f"local:m{i:03d}.py" for i in range(n)]
    try:
        subprocess.run([sys.executable, "-c", "import dagster as dg, sys; dg.DagsterInstance.get().add_dynamic_partitions('seeds', sys.argv[1:])", *keys],
                       cwd=REPO, env=env, check=True)  # fmt: skip
        t = time.perf_counter()
        logs = [open(work / f"worker{w}.log", "w+") for w in range(workers)]  # files, not pipes: a full pipe would stall a worker
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", *keys[w::workers]], cwd=REPO, env=env, stdout=log,
                                  stderr=subprocess.STDOUT) for w, log in enumerate(logs)]  # fmt: skip
        for p in procs:
            p.wait(timeout=3600)
        wall = time.perf_counter() - t
        outs = [(log.seek(0), log.read())[1] for log in logs]
        for p, out in zip(procs, outs):
            if p.returncode:
                raise SystemExit(f"worker failed:\n{out[-3000:]}")
            if os.environ.get("BENCH_VERBOSE"):
                print(out)
        import duckdb

        with duckdb.connect(env["CODEDPO_DB"], read_only=True) as con:
            built = con.execute("SELECT count(DISTINCT partition_key) FROM preference_pairs").fetchone()[0]
        if built != n:
            raise SystemExit(f"{built} of {n} partitions have pairs")
        return wall
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=8)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per model request")
    parser.add_argument(
        "--executor",
        choices=("processes", "celery"),
        default="processes",
        help="processes: worker processes running whole runs; celery: Celery workers running steps of concurrent runs",
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.worker:
        worker(args.worker)
        return
    store = "DuckLake on PostgreSQL" if args.executor == "celery" else "DuckDB file"
    print(
        f"build_pairs over {args.n} partitions, scripted model server with {args.latency:g} s per request, executor: {args.executor}, store: {store}"
    )
    run_arm = celery_arm if args.executor == "celery" else arm
    walls = {w: run_arm(args.n, w, args.latency) for w in (1, 2)}
    for w, wall in walls.items():
        print(f"  {w} worker{'s' if w > 1 else ''}: {wall:.1f} s = {60 * args.n / wall:.1f} partitions/min")
    print(f"  speed-up with 2 workers: {walls[1] / walls[2]:.2f}x")
    print(
        json.dumps(
            {
                "partitions": args.n,
                "latency_s": args.latency,
                "executor": args.executor,
                **{f"wall_s_{w}": round(v, 1) for w, v in walls.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
