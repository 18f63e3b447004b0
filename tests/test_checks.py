"""Stage checks: each passes on sound tables and catches the corruption it is written for."""

import dagster as dg
import pytest

from codedpo_assets.assets.checks import RULES, STAGE_CHECKS
from codedpo_assets.assets.resources import DuckDBStore
from codedpo_assets.store import Store


@pytest.fixture
def store(tmp_path) -> DuckDBStore:
    resource = DuckDBStore(database=str(tmp_path / "db.duckdb"))
    db: Store = resource.get()
    with db.transaction() as conn:
        conn.execute("INSERT INTO prompts (partition_key, prompt_id, seed_id, entry_point, signature, prompt, model) VALUES ('k', 'p1', 's1', 'f', 'def f()', 'x', 'm')")
        for code in ("c1", "c2"):
            conn.execute("INSERT INTO candidate_code (partition_key, prompt_id, code_id, sample_index, code) VALUES ('k', 'p1', ?, 0, 'def f(): pass')", [code])
        conn.execute("INSERT INTO generated_tests (partition_key, prompt_id, test_id, sample_index, test) VALUES ('k', 'p1', 't1', 0, 'assert f() is None')")
        for i, code in enumerate(("c1", "c2")):
            conn.execute("INSERT INTO pass_matrix (partition_key, prompt_id, code_id, test_id, code_index, test_index, status, passed, verified, cpu_time_ns) "
                         "VALUES ('k', 'p1', ?, 't1', ?, 0, 'pass', true, true, 10)", [code, i])  # fmt: skip
    return resource


def _results(store) -> dict[str, dg.AssetCheckResult]:
    return {next(iter(c.check_specs)).name: c(store=store) for c in STAGE_CHECKS}


def test_every_stage_has_checks_and_sound_tables_pass(store):
    assert {"seeds", "prompts", "candidate_code", "generated_tests", "pass_matrix", "verification_scores", "trusted_tests",
            "timings", "preference_pairs", "dpo_checkpoint", "model_evaluation"} <= set(RULES)  # fmt: skip
    failed = {name: r.metadata for name, r in _results(store).items() if not r.passed}
    assert failed == {"prompts_have_seeds": {"violations": dg.IntMetadataValue(1)}}  # the fixture has no seeds row


@pytest.mark.parametrize("corruption, check", [
    ("DELETE FROM pass_matrix WHERE code_id = 'c2'", "matrix_complete"),
    ("UPDATE pass_matrix SET passed = false WHERE code_id = 'c1'", "statuses_known"),
    ("UPDATE pass_matrix SET test_id = 'nope' WHERE code_id = 'c1'", "cells_reference_codes_and_tests"),
    ("INSERT INTO trusted_tests VALUES ('k', 'p1', 'self_verification', 'ghost', 3)", "trusted_tests_exist"),
    ("UPDATE candidate_code SET code_id = 'c1'", "code_ids_unique"),
])  # fmt: skip
def test_corruption_is_caught_by_its_check(store, corruption, check):
    with store.get().transaction() as conn:
        conn.execute(corruption)
    result = _results(store)[check]
    assert not result.passed and result.metadata["violations"].value >= 1
