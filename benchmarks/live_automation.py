"""Incremental automation under the real daemon: `dagster dev`, no clicks, seed files edited on disk.

Run: .venv/bin/python benchmarks/live_automation.py [N]   (default N = 5 partitions)

Starts `dagster dev` (webserver + daemon: the seed sensor and the automation sensor) in a fresh
Dagster home and database, with generation served by the tests' scripted OpenAI-compatible server.
Then, with nothing but file changes: (1) N new seed files are built seeds → preference_pairs;
(2) editing one file rebuilds exactly that partition; (3) adding one file and deleting another
builds the new partition and prunes the deleted one's rows. After each step it waits two more
sensor intervals and checks that no other partition was rebuilt and that export / training /
evaluation never ran. Prints how long each step took from the file change to its last run ending
(sensor intervals are 30 s, so these are latencies, not compute).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb
from incremental_bench import REPO, _write, workspace

CHAIN = ["seeds", "prompts", "candidate_code", "generated_tests", "pass_matrix",
         "verification_scores", "trusted_tests", "timings", "preference_pairs"]  # fmt: skip
MANUAL = ["preference_pairs_export", "dpo_checkpoint", "model_evaluation"]
SETTLE_S = 75  # two sensor intervals with no new run: the daemon has nothing more to do


def _materializations(instance, asset: str) -> Counter:
    return Counter(r.partition_key for r in instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records)


def _busy(instance) -> bool:
    return bool(instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
                                                                 dg.DagsterRunStatus.STARTED])))  # fmt: skip


def _wait(instance, done, timeout: float = 1800) -> float:
    """Seconds until ``done()`` holds, no run is queued or running, and none starts for SETTLE_S."""
    start = time.monotonic()
    finished, quiet_since = None, None
    while time.monotonic() - start < timeout:
        if done() and not _busy(instance):
            finished = finished or time.monotonic() - start
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= SETTLE_S:
                return finished
        else:
            finished = quiet_since = None
        time.sleep(3)
    raise TimeoutError("the daemon did not finish in time; see dagster.log in the work directory")


def _counts(instance) -> dict[str, Counter]:
    return {a: _materializations(instance, a) for a in CHAIN + MANUAL}


def _rows(db: Path) -> dict[str, int]:
    """Seeds rows per partition (read-only; retried while a run holds the write lock)."""
    for _ in range(60):
        try:
            with duckdb.connect(str(db), read_only=True) as conn:
                return dict(conn.execute("SELECT partition_key, count(*) FROM seeds GROUP BY ALL").fetchall())
        except duckdb.IOException:
            time.sleep(1)
    raise TimeoutError("database stayed locked")


def _error(instance, run_id: str) -> str:
    """The first step or run failure message of a run, for the report."""
    for record in instance.get_records_for_run(
        run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    ).records:
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event else None
        if error or (event and event.message):
            return (error.to_string() if error else event.message)[-2000:]
    return "no failure event recorded"


def _key(i: int) -> str:
    return f"local:m{i:03d}.py"  # incremental_bench's file names


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_span(instance, after: float) -> tuple[int, float]:
    """Runs that started after ``after`` (epoch seconds), and seconds from the first start to the last end."""
    runs = [r for r in instance.get_run_records() if r.start_time and r.end_time and r.start_time > after]
    return len(runs), max((r.end_time for r in runs), default=0) - min((r.start_time for r in runs), default=0)


def _check(before: dict, after: dict, rebuilt: set[str], failures: list[str], step: str) -> None:
    for asset in CHAIN:
        changed = {k for k in after[asset] if after[asset][k] != before[asset].get(k, 0)}
        if changed != rebuilt:
            failures.append(f"{step}: {asset} rebuilt {sorted(changed)}, expected {sorted(rebuilt)}")
    for asset in MANUAL:
        if after[asset]:
            failures.append(f"{step}: {asset} ran without a click")


def main(n: int) -> None:
    work, tree, env, server = workspace(n, "codedpo-live-")
    db = Path(env["CODEDPO_DB"])
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    log = open(work / "dagster.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(_free_port())],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    failures: list[str] = []
    try:
        instance = dg.DagsterInstance.get()
        everything = {_key(i) for i in range(n)}
        t_full = _wait(instance, lambda: everything <= set(_materializations(instance, "preference_pairs")))
        full_runs = _run_span(instance, 0)
        first = _counts(instance)
        _check({a: Counter() for a in CHAIN + MANUAL}, first, everything, failures, "initial build")

        edit_at = time.time()
        _write(tree, n // 2, 2)
        edited = _key(n // 2)
        t_edit = _wait(instance, lambda: _materializations(instance, "preference_pairs")[edited] == 2)
        second = _counts(instance)
        edit_runs = _run_span(instance, edit_at)
        _check(first, second, {edited}, failures, "edit 1 file")

        (tree / "m000.py").unlink()
        _write(tree, n, 1)
        t_add = _wait(instance, lambda: _key(n) in _materializations(instance, "preference_pairs") and _key(0) not in _rows(db))
        _check(second, _counts(instance), {_key(n)}, failures, "add 1 + delete 1 file")
        if _key(0) in instance.get_dynamic_partitions("seeds"):
            failures.append("delete: partition still registered")
        records = instance.get_run_records()
        runs = Counter(r.dagster_run.status.value for r in records)
        jobs = Counter(r.dagster_run.job_name for r in records)
        failures += [
            f"{n} run(s) of {job}: automation must launch the code location's named jobs"
            for job, n in jobs.items()
            if job.startswith("__")
        ]
        failures += [f"run {r.dagster_run.run_id} ({r.dagster_run.tags.get('dagster/partition', '')}) FAILED: {_error(instance, r.dagster_run.run_id)}"
                     for r in records if r.dagster_run.status == dg.DagsterRunStatus.FAILURE]  # fmt: skip
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        server.close()
        log.close()
    print(f"dagster dev, {n} partitions, no clicks (latency from file change to the last run's end; sensors every 30 s):")
    print(f"  initial build of {n} new files: {t_full:.0f} s")
    print(f"  edit 1 file → exactly that partition rebuilt seeds → pairs: {t_edit:.0f} s")
    print(
        f"  run time (first start to last end): initial build {full_runs[0]} runs in {full_runs[1]:.1f} s; "
        f"edit {edit_runs[0]} run in {edit_runs[1]:.1f} s ({edit_runs[1] / max(full_runs[1], 1e-9):.1%})"
    )
    print(f"  add 1 + delete 1 file → new partition built, deleted one pruned: {t_add:.0f} s")
    print(
        f"  runs: {dict(runs)} of jobs {dict(jobs)}; export/training/evaluation runs: 0"
        if not failures
        else "\n".join(["FAILED:", *failures])
    )
    if failures:
        raise SystemExit(f"see {work / 'dagster.log'}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
