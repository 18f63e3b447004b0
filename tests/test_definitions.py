"""The code location loads, validates with Dagster's own tools, and the README's run command works."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from conftest import FakeServer, module_with_function, write

from codedpo_assets.assets import build_definitions
from codedpo_assets.assets.resources import DuckDBStore, SeedSources, sources_from_env
from codedpo_assets.assets.seeds import seed_sources, seeds
from codedpo_assets.sources import SourceConfigError

REPO = Path(__file__).resolve().parent.parent


def test_definitions_module_exposes_seeds_assets_sensor_and_pools():
    import definitions

    defs = definitions.defs
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} >= {"seeds", "seed_sources"}
    assert defs.resolve_assets_def("seeds").partitions_def.name == "seeds"
    # compute holds no global lock: no partitioned asset, check or op is in a pool (writes are short
    # transactions that retry the database lock); only training/evaluation share one (CPU/GPU-bound)
    pooled = {a.key.to_user_string(): a.op.pool for a in graph.assets_defs if a.op.pool}
    assert pooled == {"dpo_checkpoint": "training", "model_evaluation": "training"}, pooled
    assert defs.resolve_job_def("prune_seed_partitions").graph.node_defs[0].pool is None
    for sensor in ("seed_sources_sensor", "codedpo_automation"):  # incremental rebuilds need no click
        assert defs.resolve_sensor_def(sensor).default_status == dg.DefaultSensorStatus.RUNNING
    defs.validate_loadable(defs)


def test_dagster_and_dg_validate_the_layout():
    env = {**os.environ, "DAGSTER_HOME": str(REPO / "dagster_home")}
    bin_dir = Path(sys.executable).parent
    for cmd in ([bin_dir / "dagster", "definitions", "validate", "-w", "workspace.yaml"], [bin_dir / "dg", "check", "defs"]):
        done = subprocess.run([str(c) for c in cmd], cwd=REPO, env=env, capture_output=True, check=False, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr


def test_materialize_default_stdlib_partition_in_process(tmp_path):
    store = DuckDBStore(database=str(tmp_path / "db.duckdb"))
    defs = build_definitions(store, SeedSources())
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("seeds", ["stdlib:colorsys.py"])
        result = dg.materialize(
            [seed_sources, seeds], selection=[seeds], partition_key="stdlib:colorsys.py",
            instance=instance, resources=defs.resources,
        )  # fmt: skip
        assert result.success
        (mat,) = result.asset_materializations_for_node("seeds")
        assert mat.metadata["partition_rows"].value == store.get().query("SELECT count(*) FROM seeds").item() > 0


def test_io_manager_hands_tables_to_user_assets_and_stores_no_pickles(tmp_path):
    """A user's own asset takes an upstream asset as a parameter: it gets the table (its partition
    when partitioned, every row otherwise) as a polars frame; returning a value is refused."""
    import polars as pl

    store = DuckDBStore(database=str(tmp_path / "db.duckdb"))
    defs = build_definitions(store, SeedSources())
    key = "stdlib:colorsys.py"

    @dg.asset(partitions_def=seeds.partitions_def)
    def seed_symbols(seeds: pl.DataFrame) -> None:
        assert set(seeds["partition_key"]) == {key} and "rgb_to_hsv" in set(seeds["symbol"])

    @dg.asset(deps=[seeds])
    def returns_a_value() -> int:
        return 1

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("seeds", [key, "stdlib:textwrap.py"])
        for k in (key, "stdlib:textwrap.py"):
            assert dg.materialize(
                [seed_sources, seeds], selection=[seeds], partition_key=k, instance=instance, resources=defs.resources
            ).success
        assert dg.materialize([seed_sources, seeds, seed_symbols], selection=[seed_symbols], partition_key=key, instance=instance,
                              resources=defs.resources).success  # fmt: skip
        result = dg.materialize([seed_sources, seeds, returns_a_value], selection=[returns_a_value], instance=instance,
                                resources=defs.resources, raise_on_error=False)  # fmt: skip
        assert not result.success
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        assert "write their DuckDB table themselves" in str(
            failure.step_failure_data.error.cause or failure.step_failure_data.error
        )


@pytest.mark.parametrize(
    ("content", "message"),
    [(json.dumps([{"name": "x", "kind": "directory"}]), r"sources\[0\]\.path"), ("{oops", "CODEDPO_SOURCES")],
)
def test_sources_env_file_is_validated(tmp_path, monkeypatch, content, message):
    cfg = tmp_path / "sources.json"
    cfg.write_text(content)
    monkeypatch.setenv("CODEDPO_SOURCES", str(cfg))
    with pytest.raises(SourceConfigError, match=message):
        sources_from_env()


def test_cli_run_is_incremental(tmp_path):
    tree = tmp_path / "src"
    for i in range(3):
        write(tree, f"m{i}.py", module_with_function(i))
    (tmp_path / "sources.json").write_text(json.dumps([{"name": "local", "kind": "directory", "path": str(tree)}]))
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home)
    server = FakeServer()  # generation goes to a local OpenAI-compatible server, not the embedded model
    env = {**os.environ, "DAGSTER_HOME": str(home), "CODEDPO_DB": str(tmp_path / "db.duckdb"),
           "CODEDPO_SOURCES": str(tmp_path / "sources.json"), "CODEDPO_GENERATOR": "openai",
           "CODEDPO_OPENAI_BASE_URL": server.url, "CODEDPO_OPENAI_MODEL": "fake"}  # fmt: skip

    def run() -> str:
        done = subprocess.run([sys.executable, "-m", "codedpo_assets.cli", "run", "--skip-training"], cwd=tmp_path, env=env,
                              capture_output=True, check=False, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stderr == ""  # warnings and logs go to the log file
        return done.stdout

    first = run()
    assert "materializing 3" in first
    # the terminal: a progress line per stage with done/total, the summary; Dagster's run logs,
    # warnings and third-party output went to the log file it names
    assert "[sandbox and pairs] 3/3 partitions (100 %)" in first and "[generation] 3/3 partitions (100 %)" in first
    assert (
        "[candidate_code 3 partitions] 12/12 completions (100 %)" in first
    )  # the assets' own progress, all partitions in one call
    assert " - dagster - " not in first and "Warning" not in first
    log = Path(re.search(r"^log: (\S+)", first, re.M).group(1))
    assert "RUN_SUCCESS" in log.read_text() and "build_pairs_quick" in log.read_text()
    assert (
        "Built, all partitions (pipeline_summary; not_sampled: seeds beyond the quick profile" in first and f"Log: {log}" in first
    )
    # generation ran inside one run per asset step for all three partitions: every model call is in a run's log
    batched = [int(n) for n in re.findall(r"completions for 3 partitions: (\d+) model calls", log.read_text())]
    assert len(batched) == 3 and sum(batched) == server.calls
    with dg.DagsterInstance.from_config(str(home)) as instance:
        ranged = [r for r in instance.get_run_records(dg.RunsFilter(job_name="build_pairs_quick"))
                  if r.dagster_run.tags.get("dagster/asset_partition_range_start")]  # fmt: skip
        assert len(ranged) == 1 and ranged[0].dagster_run.tags["dagster/asset_partition_range_end"] == "local:m2.py"
    walls = first[first.index("Wall time by stage (this run):") :]  # each stage's wall time, the generation engine named
    for stage in ("setup (definitions, partitions, model)", "prompts (3 partitions, openai)", "candidate_code (3 partitions, openai)", "sandbox and pairs assets",
                  "pipeline_summary", "preference_pairs_export"):  # fmt: skip
        assert re.search(rf"│ {re.escape(stage)}\s+┆ \d+\.\d\s+┆ \d+ %", walls), (stage, walls)
    with duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True) as conn:  # the summary's counts add up
        summary = {
            r[0]: r[1:] for r in conn.execute("SELECT stage, items, dropped, not_sampled FROM pipeline_summary").fetchall()
        }
        seeds, prompts = summary["seeds"][0], summary["prompts"]
        assert seeds == sum(prompts)  # every seed is a kept prompt, a dropped one, or over the quick cap
        paired = conn.execute("SELECT count(DISTINCT prompt_id) FROM preference_pairs").fetchone()[0]
        assert prompts[0] == paired + summary["pairs"][1]  # kept prompts = those with a pair + those without (each once)
    manifest = tmp_path / "data" / "export" / "manifest.json"
    exported = manifest.stat().st_mtime_ns
    assert "materializing 0" in run()
    assert manifest.stat().st_mtime_ns == exported  # nothing changed: no new export
    write(tree, "m1.py", module_with_function(1).replace("factor", "weight"))
    (tree / "m2.py").unlink()
    out = run()
    assert "(+0 -1 ~1); materializing 1" in out
    assert manifest.stat().st_mtime_ns > exported  # the changed partition's run re-exported the pairs
    sql = subprocess.run([sys.executable, "-m", "codedpo_assets.cli", "sql", "SELECT partition_key, code FROM seeds ORDER BY ALL"],
                         cwd=tmp_path, env=env, capture_output=True, check=False, text=True, timeout=120)  # fmt: skip
    assert "local:m0.py" in sql.stdout and "local:m1.py" in sql.stdout and "local:m2.py" not in sql.stdout
    assert "weight" in sql.stdout
    server.close()
