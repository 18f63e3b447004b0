"""Stage checks: each passes on sound tables and catches the corruption it is written for."""

import dagster as dg
import pytest
from conftest import FakeServer
from test_training_assets import CHAIN, SEED, _defs

from codedpo_assets.assets.checks import RULES, check_results
from codedpo_assets.assets.resources import DuckDBStore
from codedpo_assets.assets.seeds import seed_sources
from codedpo_assets.store import Store


@pytest.fixture
def store(tmp_path) -> DuckDBStore:
    resource = DuckDBStore(database=str(tmp_path / "db.duckdb"))
    db: Store = resource.get()
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO prompts (partition_key, prompt_id, seed_id, entry_point, signature, prompt, model) VALUES ('k', 'p1', 's1', 'f', 'def f()', 'x', 'm')"
        )
        for code in ("c1", "c2"):
            conn.execute(
                "INSERT INTO candidate_code (partition_key, prompt_id, code_id, sample_index, code) VALUES ('k', 'p1', ?, 0, 'def f(): pass')",
                [code],
            )
        conn.execute(
            "INSERT INTO generated_tests (partition_key, prompt_id, test_id, sample_index, test) VALUES ('k', 'p1', 't1', 0, 'assert f() is None')"
        )
        for i, code in enumerate(("c1", "c2")):
            conn.execute("INSERT INTO pass_matrix (partition_key, prompt_id, code_id, test_id, code_index, test_index, status, passed, verified, cpu_time_ns) "
                         "VALUES ('k', 'p1', ?, 't1', ?, 0, 'pass', true, true, 10)", [code, i])  # fmt: skip
        conn.execute("INSERT INTO seed_reference (partition_key, prompt_id, seed_id, status, reason, judged, match_mass, overlap, decides, confidence) "
                     "VALUES ('k', 'p1', 's1', 'not_runnable', 'defines no function', 0, 0, 0, false, 0.5)")  # fmt: skip
    return resource


def _results(store) -> dict[str, dg.AssetCheckResult]:
    return {r.check_name: r for asset in RULES for r in check_results(store, asset)}


def test_every_stage_has_checks_and_sound_tables_pass(store):
    assert {"seeds", "prompts", "candidate_code", "generated_tests", "pass_matrix", "seed_reference", "verification_scores", "trusted_tests",
            "timings", "preference_pairs", "dpo_checkpoint", "model_evaluation"} <= set(RULES)  # fmt: skip
    failed = {name: r.metadata for name, r in _results(store).items() if not r.passed}
    assert failed == {"prompts_have_seeds": {"violations": dg.IntMetadataValue(1)}}  # the fixture has no seeds row


@pytest.mark.parametrize("corruption, check", [
    ("DELETE FROM pass_matrix WHERE code_id = 'c2'", "matrix_complete"),
    ("UPDATE pass_matrix SET passed = false WHERE code_id = 'c1'", "statuses_known"),
    ("UPDATE pass_matrix SET test_id = 'nope' WHERE code_id = 'c1'", "cells_reference_codes_and_tests"),
    ("INSERT INTO trusted_tests VALUES ('k', 'p1', 'self_verification', 'ghost', 3)", "trusted_tests_exist"),
    ("UPDATE candidate_code SET code_id = 'c1'", "code_ids_unique"),
    ("UPDATE seed_reference SET status = 'maybe'", "verdicts_known"),
    ("UPDATE seed_reference SET decides = true", "verdicts_known"),
    ("DELETE FROM seed_reference", "one_verdict_per_task"),
    ("INSERT INTO pass_matrix (partition_key, prompt_id, code_id, test_id, code_index, test_index, status, passed, verified, cpu_time_ns, is_reference) "
     "VALUES ('k', 'p1', 'seed:ghost', 't1', -1, 0, 'pass', true, true, 10, true)", "cells_reference_codes_and_tests"),
])  # fmt: skip
def test_corruption_is_caught_by_its_check(store, corruption, check):
    with store.get().transaction() as conn:
        conn.execute(corruption)
    result = _results(store)[check]
    assert not result.passed and result.metadata["violations"].value >= 1


def test_failed_blocking_check_stops_the_chain_before_pairs(tree, tmp_path):
    """A corrupt pass matrix (a cell pointing at no test) stops the run: no scores, no pairs."""
    (tree / "calc.py").write_text(SEED)
    server = FakeServer()
    try:
        defs = _defs(tmp_path, tree, server.url)
        with defs.resources["store"].get().transaction() as conn:
            conn.execute("INSERT INTO pass_matrix (partition_key, prompt_id, code_id, test_id, code_index, test_index, status, passed, verified, cpu_time_ns) "
                         "VALUES ('elsewhere', 'p', 'c', 'ghost', 0, 0, 'pass', true, true, 1)")  # fmt: skip
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("seeds", ["local:calc.py"])
            result = dg.materialize([seed_sources, *CHAIN, *defs.asset_checks], selection=CHAIN, partition_key="local:calc.py",
                                    instance=instance, resources=defs.resources, raise_on_error=False)  # fmt: skip
            failed = [(e.asset_key.to_user_string(), e.check_name) for e in result.get_asset_check_evaluations() if not e.passed]
            assert not result.success and set(failed) == {
                ("pass_matrix", "cells_reference_codes_and_tests"),
                ("pass_matrix", "matrix_complete"),
            }
            assert instance.get_latest_materialization_event(dg.AssetKey("pass_matrix")) is not None
            assert instance.get_latest_materialization_event(dg.AssetKey("verification_scores")) is None
            assert instance.get_latest_materialization_event(dg.AssetKey("preference_pairs")) is None
    finally:
        server.close()
