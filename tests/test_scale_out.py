"""Scale-out: the multiprocess executor builds several seed partitions at once — two runs in
parallel processes, independent steps in parallel within each — all writing one DuckDB file,
with no lock failure."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
from conftest import FakeServer

REPO = Path(__file__).resolve().parent.parent
SEED = "def add(a, b):\n    total = a\n    total += b\n    return total\n"


def test_multiprocess_executor_parallel_partitions_share_duckdb(tmp_path):
    tree = tmp_path / "src"
    tree.mkdir()
    keys = []
    for i in range(2):
        (tree / f"calc{i}.py").write_text(SEED)
        keys.append(f"local:calc{i}.py")
    (tmp_path / "sources.json").write_text(json.dumps([{"name": "local", "kind": "directory", "path": str(tree)}]))
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # no pool limits: writers really contend
    (tmp_path / "run.yaml").write_text(json.dumps({
        "ops": {n: {"config": {"n_samples": 4}} for n in ("prompts", "candidate_code", "generated_tests")},
        "execution": {"config": {"max_concurrent": 2}}}))  # fmt: skip
    server = FakeServer()
    db = tmp_path / "db.duckdb"
    env = {**os.environ, "DAGSTER_HOME": str(home), "CODEDPO_DB": str(db), "CODEDPO_SOURCES": str(tmp_path / "sources.json"),
           "CODEDPO_GENERATOR": "openai", "CODEDPO_OPENAI_BASE_URL": server.url, "CODEDPO_OPENAI_MODEL": "fake", "CODEDPO_EXECUTOR": "multiprocess"}  # fmt: skip
    try:
        with dg.instance_for_test(temp_dir=str(home)) as instance:
            instance.add_dynamic_partitions("seeds", keys)
        runs = [subprocess.Popen([sys.executable, "-m", "dagster", "job", "execute", "-m", "definitions", "-j", "build_pairs",
                                  "-c", str(tmp_path / "run.yaml"), "--tags", json.dumps({"dagster/partition": key})],
                                 cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for key in keys]  # fmt: skip
        outputs = [r.communicate(timeout=600)[0] for r in runs]
    finally:
        server.close()
    for run, out in zip(runs, outputs):
        assert run.returncode == 0, out[-3000:]
        assert "RUN_SUCCESS" in out and "lock" not in out.lower().replace("unlock", "")
    con = duckdb.connect(str(db), read_only=True)
    per_key = dict(con.execute("SELECT partition_key, count(*) FROM preference_pairs GROUP BY ALL").fetchall())
    assert per_key == dict.fromkeys(keys, 1)  # each partition: right (a + b) vs wrong (a - b) program
    assert con.execute("SELECT count(DISTINCT partition_key) FROM pass_matrix").fetchone()[0] == 2
