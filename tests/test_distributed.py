"""A distributed executor, exercised: `build_pairs` on two Celery worker processes (Redis broker
from Debian) that share nothing with the run or each other but the network — the Dagster instance
and the store both live in PostgreSQL (the store as DuckLake: catalog in PostgreSQL, data files
in a data path)."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import FakeServer
from servers import redis_server

REPO = Path(__file__).resolve().parent.parent
SEED = "def add(a, b):\n    total = a\n    total += b\n    return total\n"
READBACK = """
import json, dagster as dg
from codedpo_assets.store import Store
db, instance = Store(), dg.DagsterInstance.get()
(run,) = instance.get_run_records()
events = instance.all_logs(run.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
print(json.dumps({"pairs": db.query("SELECT count(*) FROM preference_pairs").item(),
                  "cells": db.query("SELECT count(*) FROM pass_matrix WHERE NOT coalesce(is_reference, false)").item(),
                  "reference_cells": db.query("SELECT count(*) FROM pass_matrix WHERE is_reference").item(),
                  "step_pids": sorted({e.dagster_event.pid for e in events}), "steps": len(events)}))
"""


@pytest.fixture
def redis_url(tmp_path):
    """A throwaway redis-server (tests/servers.py)."""
    try:
        with redis_server(tmp_path) as url:
            yield url
    except FileNotFoundError as exc:
        pytest.skip(f"{exc}; .ci/run installs it")


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_build_pairs_on_celery_workers_with_postgres_instance_and_ducklake(postgres, redis_url, tmp_path):
    pytest.importorskip("dagster_celery")
    pytest.importorskip("dagster_postgres")
    tag = uuid.uuid4().hex[:10]
    instance_db, lake_catalog = f"dagster_{tag}", postgres.create_database(f"lake_{tag}")
    postgres.create_database(instance_db)
    home, tree, celery_dir = tmp_path / "home", tmp_path / "src", tmp_path / "celery"
    for d in (home, tree, celery_dir):
        d.mkdir()
    (tree / "calc.py").write_text(SEED)
    (tmp_path / "sources.json").write_text(json.dumps([{"name": "local", "kind": "directory", "path": str(tree)}]))
    url = postgres.sqlalchemy_url(instance_db)
    (home / "dagster.yaml").write_text(f'storage:\n  postgres:\n    postgres_url: "{url}"\ntelemetry:\n  enabled: false\n')
    (celery_dir / "dagster_celery_config.py").write_text(f"broker_url = {redis_url!r}\nresult_backend = {redis_url!r}\n")
    server = FakeServer()
    env = {**os.environ, "DAGSTER_HOME": str(home), "CODEDPO_CATALOG": lake_catalog, "CODEDPO_DATA_PATH": str(tmp_path / "lake"),
           "CODEDPO_SOURCES": str(tmp_path / "sources.json"), "CODEDPO_GENERATOR": "openai", "CODEDPO_OPENAI_BASE_URL": server.url,
           "CODEDPO_OPENAI_MODEL": "fake", "CODEDPO_EXECUTOR": "celery", "PYTHONPATH": f"{REPO}{os.pathsep}{celery_dir}"}  # fmt: skip
    workers = [subprocess.Popen([sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker", "--pool", "solo", "--prefetch-multiplier=1",
                                 "--loglevel", "INFO", "-n", f"w{i}@%h"], cwd=tmp_path, env=env,
                                stdout=open(tmp_path / f"worker{i}.log", "w"), stderr=subprocess.STDOUT) for i in range(2)]  # fmt: skip
    try:
        subprocess.run([sys.executable, "-c", "import dagster as dg; dg.DagsterInstance.get().add_dynamic_partitions('seeds', ['local:calc.py'])"],
                       cwd=REPO, env=env, check=True)  # fmt: skip
        (tmp_path / "run.yaml").write_text(json.dumps({
            "ops": {n: {"config": {"n_samples": 4}} for n in ("prompts", "candidate_code", "generated_tests")},
            "execution": {"config": {"broker": redis_url, "backend": redis_url}}}))  # fmt: skip
        run = subprocess.Popen([sys.executable, "-m", "dagster", "job", "execute", "-m", "definitions", "-j", "build_pairs", "-c",
                                str(tmp_path / "run.yaml"), "--tags", json.dumps({"dagster/partition": "local:calc.py"})],
                               cwd=REPO, env=env, stdout=open(tmp_path / "run.log", "w"), stderr=subprocess.STDOUT)  # fmt: skip
        # SQL inspection while the pipeline writes: the CLI's query loop never fails on the scale-out store
        queries = []
        while run.poll() is None:
            q = subprocess.run([sys.executable, "-m", "codedpo_assets.cli", "sql", "SELECT count(*) AS cells FROM pass_matrix"], cwd=REPO, env=env,
                               capture_output=True, check=False, text=True, timeout=120)  # fmt: skip
            queries.append(q.returncode)
            assert q.returncode == 0 and "cells" in q.stdout, q.stdout + q.stderr
        output = (tmp_path / "run.log").read_text()
        logs = "".join((tmp_path / f"worker{i}.log").read_text()[-3000:] for i in range(2))
        assert run.returncode == 0 and "RUN_SUCCESS" in output, output[-4000:] + logs
        assert queries, "the run ended before a single query ran"
        readback = subprocess.run([sys.executable, "-c", READBACK], cwd=REPO, env=env, capture_output=True, text=True, check=True)
        result = json.loads(readback.stdout.strip().splitlines()[-1])
    finally:
        _stop(workers)
        server.close()
    assert result["pairs"] == 1 and result["cells"] == 6  # right (a + b) vs wrong (a - b) program, 2 codes x 3 tests, in the lake
    assert result["reference_cells"] == 3  # and the seed's reference row
    # every step ran in a worker process, and both workers took steps
    assert set(result["step_pids"]) == {w.pid for w in workers}, (result, [w.pid for w in workers])
