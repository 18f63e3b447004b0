"""Incremental rule: sensor keeps partitions in step with files; automation rebuilds only what changed."""

import dagster as dg
import pytest
from conftest import FakeServer, module_with_function, write
from test_training_assets import CHAIN, SEED, _defs

from codedpo_assets.assets import build_definitions
from codedpo_assets.assets.resources import DuckDBStore, SeedSource, SeedSources
from codedpo_assets.assets.seeds import SEED_PARTITIONS, seed_sources, seed_sources_sensor, seeds

N_FILES = 24


@pytest.fixture
def setup(tree, tmp_path):
    for i in range(N_FILES):
        write(tree, f"pkg{i % 3}/mod{i:02d}.py", module_with_function(i))
    sources = SeedSources(sources=[SeedSource(name="local", kind="directory", path=str(tree))])
    store = DuckDBStore(database=str(tmp_path / "db.duckdb"))
    with dg.instance_for_test() as instance:
        yield tree, build_definitions(store, sources), instance


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    """One sensor evaluation, applied to the instance the way the daemon applies it."""
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"sources": defs.resources["sources"]})
    result = seed_sources_sensor(ctx)
    for request in result.dynamic_partitions_requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result


def _launched(result, key) -> list:
    """Partition keys an evaluation requests for ``key`` ([None]: an unpartitioned one, once)."""
    subset = next(r.true_subset for r in result.results if r.key == key)
    return sorted(subset.expensively_compute_partition_keys()) if subset.is_partitioned else [None] * min(subset.size, 1)


def requested(defs, instance, cursor):
    """Partitions automation launches the build_pairs job for (a named job: runs have a history in the UI)."""
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    return _launched(result, dg.AssetJobKey("build_pairs")), result.cursor


def build(defs, instance, keys):
    for key in keys:
        assert dg.materialize(
            [seed_sources, seeds], selection=[seeds], partition_key=key, instance=instance, resources=defs.resources
        ).success


def test_changing_one_file_requests_exactly_one_partition(setup):
    tree, defs, instance = setup
    first = tick(defs, instance, None)
    keys = sorted(instance.get_dynamic_partitions(SEED_PARTITIONS.name))
    assert len(keys) == N_FILES and len(first.asset_events) == N_FILES
    todo, auto_cursor = requested(defs, instance, None)
    assert todo == keys  # new partitions are built once
    build(defs, instance, todo)
    store = defs.resources["store"].get()
    assert store.query("SELECT count(*) FROM seeds").item() == N_FILES

    quiet = tick(defs, instance, first.cursor)
    assert quiet.asset_events == [] and quiet.run_requests == []
    todo, auto_cursor = requested(defs, instance, auto_cursor)
    assert todo == []

    write(tree, "pkg1/mod07.py", module_with_function(7).replace("factor", "weight"))
    changed = tick(defs, instance, quiet.cursor)
    assert [e.partition for e in changed.asset_events] == ["local:pkg1/mod07.py"]
    todo, auto_cursor = requested(defs, instance, auto_cursor)
    assert todo == ["local:pkg1/mod07.py"]
    build(defs, instance, todo)
    code = store.query("SELECT code FROM seeds WHERE partition_key = 'local:pkg1/mod07.py'").item()
    assert "weight" in code


def test_added_and_deleted_files_add_and_remove_partitions(setup):
    tree, defs, instance = setup
    first = tick(defs, instance, None)
    build(defs, instance, ["local:pkg0/mod00.py", "local:pkg1/mod01.py"])
    _, auto_cursor = requested(defs, instance, None)
    (tree / "pkg0/mod00.py").unlink()
    write(tree, "pkg2/new.py", module_with_function(100))
    result = tick(defs, instance, first.cursor)
    keys = set(instance.get_dynamic_partitions(SEED_PARTITIONS.name))
    assert "local:pkg2/new.py" in keys and "local:pkg0/mod00.py" not in keys and len(keys) == N_FILES
    assert [e.partition for e in result.asset_events] == ["local:pkg2/new.py"]
    assert requested(defs, instance, auto_cursor)[0] == ["local:pkg2/new.py"]  # added later: built too
    (prune,) = result.run_requests
    run_config = prune.run_config.to_config_dict() if hasattr(prune.run_config, "to_config_dict") else prune.run_config
    job = defs.get_job_def("prune_seed_partitions")
    assert job.execute_in_process(run_config=run_config, instance=instance, resources=defs.resources).success
    store = defs.resources["store"].get()
    assert store.query("SELECT DISTINCT partition_key FROM seeds").rows() == [("local:pkg1/mod01.py",)]


def test_queued_runs_of_a_removed_partition_are_cancelled_not_launched(setup):
    """The race behind a FAILED run under the daemon: automation queues a run for a file, the file
    is deleted, the partition goes, and the queued run then fails at launch. The seed sensor now
    cancels such runs before deleting the partition; runs of other partitions stay queued."""
    tree, defs, instance = setup
    first = tick(defs, instance, None)
    job = defs.resolve_job_def("build_pairs")  # NOT_STARTED: a queued run needs a code-location origin; both are cancelled alike
    queued = {key: instance.create_run_for_job(job, tags={"dagster/partition": key}, status=dg.DagsterRunStatus.NOT_STARTED).run_id
              for key in ("local:pkg0/mod00.py", "local:pkg1/mod01.py")}  # fmt: skip
    (tree / "pkg0/mod00.py").unlink()
    tick(defs, instance, first.cursor)
    assert instance.get_run_by_id(queued["local:pkg0/mod00.py"]).status == dg.DagsterRunStatus.CANCELED
    assert instance.get_run_by_id(queued["local:pkg1/mod01.py"]).status == dg.DagsterRunStatus.NOT_STARTED


def test_restarted_sensor_without_cursor_uses_recorded_versions(setup):
    _, defs, instance = setup
    tick(defs, instance, None)
    again = tick(defs, instance, None)  # e.g. the daemon's cursor was reset
    assert again.asset_events == [] and again.dynamic_partitions_requests[0].partition_keys == []


def requested_runs(defs, instance, cursor) -> tuple[dict[str, list], object]:
    """What one automation evaluation launches: job → requested partitions (None: an unpartitioned
    job), and any asset requested outside a job (there should be none)."""
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    wanted = {r.key.job_name if isinstance(r.key, dg.AssetJobKey) else r.key.to_user_string(): _launched(result, r.key)
              for r in result.results if r.true_subset.size}  # fmt: skip
    return wanted, result.cursor


def materialized(instance, key: str) -> list[str]:
    return sorted(r.partition_key for r in instance.fetch_materializations(dg.AssetKey(key), limit=1000).records)


def test_seed_edits_cascade_to_pairs_and_never_retrain(tree, tmp_path):
    """What the daemon does on add / edit / delete: exactly the affected partitions, seeds → pairs, one run each."""
    chain = [a.key.to_user_string() for a in CHAIN]
    for i in range(3):
        write(tree, f"calc{i}.py", SEED.replace("return total", f"return total + {i}"))
    server = FakeServer()
    defs = _defs(tmp_path, tree, server.url)
    sampling = {"ops": {n: {"config": {"n_samples": 2}} for n in ("prompts", "candidate_code", "generated_tests")}}

    def run(todo: dict[str, list]) -> None:
        assert set(todo) <= {"build_pairs", "summarize"}, f"automation asked for more than seeds → pairs and the totals: {todo}"
        # one run per requested partition, of a named job with the same assets: build_pairs itself cannot
        # execute_in_process (Dagster rejects in-process runs of a partitioned job that carries an automation
        # condition; the daemon's launches of it go through the run launcher), so its quick twin runs here
        for key in todo.get("build_pairs", []):
            assert (
                defs.resolve_job_def("build_pairs_quick")
                .execute_in_process(partition_key=key, instance=instance, run_config=sampling)
                .success
            )
        if "summarize" in todo:
            assert defs.resolve_job_def("summarize").execute_in_process(instance=instance).success

    try:
        with dg.instance_for_test() as instance:
            cursor = tick(defs, instance, None).cursor
            todo, auto = requested_runs(defs, instance, None)
            all_keys = [f"local:calc{i}.py" for i in range(3)]
            assert todo == {"build_pairs": all_keys}  # new partitions: the whole chain, one run each, in one tick
            run(todo)
            assert all(materialized(instance, a) == all_keys for a in chain)
            todo, auto = requested_runs(defs, instance, auto)
            assert todo == {"summarize": [None]}  # the partitions' new rows: the totals across partitions
            run(todo)
            todo, auto = requested_runs(defs, instance, auto)
            assert todo == {}  # built: nothing more, no loop
            runs = instance.get_run_records(dg.RunsFilter(job_name="build_pairs_quick"))
            assert len(runs) == 3 and {r.dagster_run.tags["dagster/partition"] for r in runs} == set(all_keys)
            assert defs.resources["store"].get().query("SELECT count(*) FROM preference_pairs").item() > 0

            write(tree, "calc1.py", SEED.replace("return total", "return total * 1"))
            cursor = tick(defs, instance, cursor).cursor
            todo, auto = requested_runs(defs, instance, auto)
            assert todo == {"build_pairs": ["local:calc1.py"]}
            run(todo)
            assert all(materialized(instance, a) == sorted([*all_keys, "local:calc1.py"]) for a in chain)

            (tree / "calc0.py").unlink()
            write(tree, "calc9.py", SEED)
            tick(defs, instance, cursor)
            todo, auto = requested_runs(defs, instance, auto)
            assert todo == {"build_pairs": ["local:calc9.py"], "summarize": [None]}
            run(todo)  # the totals ran after the partition here: nothing left
            assert requested_runs(defs, instance, auto)[0] == {}
            for name in ("preference_pairs_export", "dpo_checkpoint", "model_evaluation"):
                assert materialized(instance, name) == []  # training stays manual
    finally:
        server.close()
