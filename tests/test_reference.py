"""The seed as a reference (pure): its verdicts on small, hand-built pass matrices."""

import numpy as np
import pytest

from codedpo_assets import reference
from codedpo_assets.pairs import Pair, correctness_pair
from codedpo_assets.scoring import rank_candidates

# Task: f(x) = 2 * x. Generated tests: f(1) == 2 (right), f(2) == 3 (wrong), f(3) == 6 (right).
INPUTS = ["f(1)", "f(2)", "f(3)"]
EXPECTED = ["=2", "=3", "=6"]
PLUS_ONE = ["=2", "=3", "=4"]  # the popular wrong behaviour: x + 1
DOUBLE = ["=2", "=4", "=6"]  # the right one, written less often


def ranked(*codes: tuple[list[str], int]):
    """The default ranking of codes given as (outputs per test, samples that wrote it)."""
    prints = np.array([outputs for outputs, _ in codes], dtype=object)
    passed = prints == np.array(EXPECTED, dtype=object)[None, :]
    weights = [n for _, n in codes]
    return rank_candidates(passed, code_weights=weights, fingerprints=prints, inputs=INPUTS), weights


def seed_row(outputs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    prints = np.array(outputs, dtype=object)
    return prints == np.array(EXPECTED, dtype=object), prints


def test_a_right_seed_lifts_a_minority_behaviour_and_distrusts_the_wrong_test():
    ranking, weights = ranked((PLUS_ONE, 6), (DOUBLE, 2))
    assert ranking.chosen == 0  # without the seed the popular wrong behaviour wins
    verdict = reference.judge(ranking, *seed_row(DOUBLE), INPUTS)
    assert verdict.status == "overrules" and verdict.decides
    assert verdict.trusted.tolist() == [True, False, True]  # the seed fails f(2) == 3: not trusted
    assert verdict.fidelity == 2 / 3 and verdict.match_mass == 0.25
    seeded = reference.seed_ranking(ranking, verdict)
    assert seeded.chosen == 1 and seeded.method == "consensus+seed"
    pair = correctness_pair(seeded, ["a", "b"], weights, trusted=verdict.trusted)
    assert isinstance(pair, Pair) and (pair.chosen, pair.rejected) == (1, 0)


def test_a_seed_that_agrees_keeps_the_choice_and_trusts_only_what_it_passes():
    ranking, _ = ranked((DOUBLE, 6), (PLUS_ONE, 2))
    verdict = reference.judge(ranking, *seed_row(DOUBLE), INPUTS)
    assert verdict.status == "agrees"
    assert reference.seed_ranking(ranking, verdict).chosen == ranking.chosen == 0
    assert 0 < reference.confidence(verdict) <= 1


def test_a_drifted_seed_decides_nothing_and_leaves_the_seed_free_ranking():
    ranking, _ = ranked((PLUS_ONE, 6), (DOUBLE, 2))
    verdict = reference.judge(ranking, *seed_row(["='a'", "='b'", "='c'"]), INPUTS)
    assert verdict.status == "drifted" and not verdict.decides
    assert not verdict.trusted.any()  # nothing trusted because the seed passes it, nothing distrusted
    assert reference.seed_ranking(ranking, verdict) is ranking
    assert reference.confidence(verdict) == 0.0


def test_a_seed_erroring_everywhere_has_drifted_and_one_missing_its_module_is_not_runnable():
    ranking, _ = ranked((PLUS_ONE, 6), (DOUBLE, 2))
    assert reference.judge(ranking, *seed_row(["!error:TypeError"] * 3), INPUTS).status == "drifted"
    verdict = reference.judge(ranking, *seed_row(["!error:NameError"] * 3), INPUTS)
    assert verdict.status == "not_runnable" and "NameError" in verdict.reason


def test_a_seed_near_a_behaviour_but_matching_none_is_conflicting():
    ranking, _ = ranked((PLUS_ONE, 6), (DOUBLE, 2))
    verdict = reference.judge(ranking, *seed_row(["=2", "=4", "=7"]), INPUTS)
    assert verdict.status == "conflicting" and not verdict.decides
    assert verdict.overlap == 2 / 3


def test_inputs_where_the_seed_returns_no_value_do_not_count_against_a_candidate():
    ranking, _ = ranked((PLUS_ONE, 6), (DOUBLE, 2))
    verdict = reference.judge(ranking, *seed_row(["=2", "!error:ValueError", "=6"]), INPUTS)
    assert verdict.status == "overrules" and verdict.judged == 2 / 3 and verdict.fidelity == 1.0


def test_runnable_names_why_a_seed_cannot_run_on_its_own():
    assert reference.runnable("def f(x):\n    return 2 * x\n", "f") is None
    assert "does not compile" in reference.runnable("def f(x:\n", "f")
    assert "defines no function 'f'" in reference.runnable("def g(x):\n    return x\n", "f")


def test_a_verdict_needs_one_reference_cell_per_test():
    ranking, _ = ranked((PLUS_ONE, 6), (DOUBLE, 2))
    with pytest.raises(ValueError, match="one reference verdict"):
        reference.judge(ranking, [True], ["=2"], INPUTS)
