"""Asset checks for every stage: unique ids, referential integrity, completeness, sane values.

Each check is one SQL query counting violations over the whole table (cheap in DuckDB); an
asset's checks run as one step, so a run has one check step per asset rather than one per rule. Checks
on the stages that feed pairs (pass matrix, scores, trusted tests, pairs) are blocking: a bad
upstream stops the run before it poisons the preference data.
"""

from collections.abc import Iterable, Iterator, Sequence

import dagster as dg

from codedpo_assets.assets.ranking import REFERENCE_PREFIX
from codedpo_assets.assets.resources import DuckDBStore
from codedpo_assets.reference import STATUSES


def _dup(table: str, key: str) -> str:
    return f"SELECT count(*) - count(DISTINCT {key}) FROM {table}"


def _orphans(table: str, column: str, parent: str, parent_column: str | None = None) -> str:
    return f"SELECT count(*) FROM {table} t WHERE t.{column} IS NOT NULL AND t.{column} NOT IN (SELECT {parent_column or column} FROM {parent})"


SEED_CODE_ID = f"'{REFERENCE_PREFIX}' || seed_id"  # a reference row's code_id, from seeds

# asset → (check name, description, violations SQL, blocking)
RULES: dict[str, Sequence[tuple[str, str, str, bool]]] = {
    "seeds": [
        ("seed_ids_unique", "No seed_id appears twice.", _dup("seeds", "seed_id"), False),
        ("seeds_parse", "Every seed has code and a symbol.", "SELECT count(*) FROM seeds WHERE code = '' OR symbol = ''", False),
    ],
    "prompts": [
        ("prompt_ids_unique", "No prompt_id appears twice.", _dup("prompts", "prompt_id"), False),
        ("prompts_have_seeds", "Every prompt's seed exists.", _orphans("prompts", "seed_id", "seeds"), False),
    ],
    "candidate_code": [
        ("code_ids_unique", "No code_id appears twice.", _dup("candidate_code", "code_id"), False),
        ("codes_have_prompts", "Every candidate's prompt exists.", _orphans("candidate_code", "prompt_id", "prompts"), False),
        (
            "kept_codes_have_text",
            "Kept candidates (no drop reason) have code.",
            "SELECT count(*) FROM candidate_code WHERE reason IS NULL AND code IS NULL",
            False,
        ),
    ],
    "generated_tests": [
        ("test_ids_unique", "No test_id appears twice.", _dup("generated_tests", "test_id"), False),
        ("tests_have_prompts", "Every test's prompt exists.", _orphans("generated_tests", "prompt_id", "prompts"), False),
    ],
    "pass_matrix": [
        (
            "cells_reference_codes_and_tests",
            "Every cell's code and test exist.",
            f"SELECT ({_orphans('pass_matrix', 'code_id', 'candidate_code')} AND NOT coalesce(t.is_reference, false)) "
            f"+ ({_orphans('pass_matrix', 'test_id', 'generated_tests')}) "
            f"+ ({_orphans('pass_matrix', 'code_id', 'seeds', SEED_CODE_ID)} AND t.is_reference)",
            True,
        ),
        (
            "matrix_complete",
            "Each prompt has one cell per kept code × kept test, none twice, and its seed's reference row has every test or none.",
            "WITH m AS (SELECT prompt_id, count(*) FILTER (WHERE NOT coalesce(is_reference, false)) AS n, count(DISTINCT (code_id, test_id)) AS d, "
            "count(*) FILTER (WHERE is_reference) AS r, count(*) AS cells FROM pass_matrix GROUP BY prompt_id), "
            "k AS (SELECT prompt_id, (SELECT count(*) FROM generated_tests t WHERE t.prompt_id = m.prompt_id AND t.reason IS NULL) AS tests FROM m) "
            "SELECT count(*) FROM m JOIN k USING (prompt_id) WHERE cells <> d OR r NOT IN (0, tests) "
            "OR n <> (SELECT count(*) FROM candidate_code c WHERE c.prompt_id = m.prompt_id AND c.reason IS NULL) * tests",
            True,
        ),
        (
            "statuses_known",
            "Status is one of pass/fail/error/timeout/crash; passed iff status = pass.",
            "SELECT count(*) FROM pass_matrix WHERE status NOT IN ('pass', 'fail', 'error', 'timeout', 'crash') OR passed <> (status = 'pass')",
            True,
        ),
    ],
    "seed_reference": [
        (
            "one_verdict_per_task",
            "Every prompt with a pass matrix has exactly one seed verdict.",
            "SELECT (SELECT count(*) - count(DISTINCT prompt_id) FROM seed_reference) + (SELECT count(*) FROM (SELECT DISTINCT prompt_id FROM pass_matrix "
            "WHERE NOT coalesce(is_reference, false)) m WHERE m.prompt_id NOT IN (SELECT prompt_id FROM seed_reference))",
            True,
        ),
        (
            "verdicts_known",
            "Status is one of codedpo_assets.reference.STATUSES; a deciding seed agrees or overrules.",
            f"SELECT count(*) FROM seed_reference WHERE status NOT IN {STATUSES} OR (decides AND status NOT IN ('agrees', 'overrules'))",
            True,
        ),
    ],
    "verification_scores": [
        ("scores_finite", "Every score is finite.", "SELECT count(*) FROM verification_scores WHERE NOT isfinite(score)", True),
        (
            "scores_unique",
            "One score per (prompt, ranker, kind, item).",
            "SELECT count(*) - count(DISTINCT (prompt_id, ranker, kind, item_id)) FROM verification_scores",
            True,
        ),
    ],
    "trusted_tests": [
        (
            "trusted_tests_exist",
            "Every trusted test exists in generated_tests.",
            _orphans("trusted_tests", "test_id", "generated_tests"),
            True,
        ),
    ],
    "timings": [
        (
            "timings_positive",
            "Timed candidates have positive medians and ≥5 repetitions.",
            "SELECT count(*) FROM timings WHERE median_ns <= 0 OR repetitions < 5",
            False,
        ),
    ],
    "preference_pairs": [
        ("pair_ids_unique", "No pair_id appears twice.", _dup("preference_pairs", "pair_id"), True),
        (
            "pairs_reference_codes",
            "Chosen and rejected codes exist in candidate_code.",
            f"SELECT ({_orphans('preference_pairs', 'chosen_code_id', 'candidate_code', 'code_id')}) + "
            f"({_orphans('preference_pairs', 'rejected_code_id', 'candidate_code', 'code_id')})",
            True,
        ),
    ],
    "dpo_checkpoint": [
        (
            "curves_finite",
            "Every recorded training-curve value is finite.",
            "SELECT count(*) FROM dpo_checkpoint_curves WHERE NOT isfinite(value)",
            False,
        ),
        (
            "curves_have_checkpoints",
            "Every curve row belongs to a recorded checkpoint.",
            _orphans("dpo_checkpoint_curves", "checkpoint_id", "dpo_checkpoint"),
            False,
        ),
    ],
    "model_evaluation": [
        (
            "rates_in_range",
            "Pass rates and accuracies lie in [0, 1].",
            "SELECT count(*) FROM model_evaluation WHERE (metric LIKE 'humaneval_pass@%' OR metric LIKE '%accuracy' OR metric LIKE '%share') "
            "AND NOT value BETWEEN 0 AND 1",
            False,
        ),
    ],
}


def check_results(store: DuckDBStore, asset: str, names: Iterable[str] | None = None) -> list[dg.AssetCheckResult]:
    """Run ``asset``'s rules (all, or those named) on one connection: one query each, violations counted."""
    wanted = None if names is None else set(names)
    rules = [r for r in RULES[asset] if wanted is None or r[0] in wanted]
    with store.get().connect() as conn:
        counts = [int((conn.execute(sql).fetchone() or (0,))[0] or 0) for _, _, sql, _ in rules]
    return [dg.AssetCheckResult(asset_key=asset, check_name=name, passed=n == 0, metadata={"violations": n},
                                severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN)
            for (name, _, _, blocking), n in zip(rules, counts)]  # fmt: skip


def _stage_checks(asset: str) -> dg.AssetChecksDefinition:
    """All of one asset's checks as one step (one process and one connection, not one each), in the DuckDB pool."""
    specs = [
        dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking)
        for name, description, _, blocking in RULES[asset]
    ]

    @dg.multi_asset_check(name=f"{asset}_checks", specs=specs, can_subset=True,
                          description=f"SQL checks of `{asset}` (see codedpo_assets/assets/checks.py).")  # fmt: skip
    def _run(context: dg.AssetCheckExecutionContext, store: DuckDBStore) -> Iterator[dg.AssetCheckResult]:
        yield from check_results(store, asset, [key.name for key in context.selected_asset_check_keys])

    return _run


STAGE_CHECKS = [_stage_checks(asset) for asset in RULES]
