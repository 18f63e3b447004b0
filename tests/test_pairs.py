"""Trusted tests and pair rules: ties, identical code, noise, degenerate prompts."""

import numpy as np
import pytest

from codedpo_assets.pairs import Pair, confidence, correctness_pair, efficiency_pair, trusted_codes, trusted_tests
from codedpo_assets.sandbox.timing import Timing


def test_trusted_tests_are_passed_by_every_top_code():
    passed = np.array([[1, 1, 0], [1, 0, 1], [0, 0, 0]], dtype=bool)
    assert trusted_tests(passed, np.array([2.0, 2.0, 0.1])).tolist() == [True, False, False]  # tie: both must pass
    assert trusted_tests(passed, np.array([3.0, 2.0, 0.1])).tolist() == [True, True, False]
    assert trusted_tests(np.zeros((0, 2), dtype=bool), np.array([])).tolist() == [False, False]


def test_correctness_pair_rules():
    passed = np.array([[1, 1], [0, 0], [1, 0]], dtype=bool)
    assert correctness_pair(np.array([0.9, 0.1, 0.5]), ["a", "b", "c"], passed) == Pair(0, 1, 0.8)
    assert correctness_pair(np.array([0.5, 0.5]), ["a", "b"], passed[:2]) == "no_code_fails_a_trusted_test"  # tied: nothing trusted
    assert correctness_pair(np.array([0.9, 0.6]), ["a", "b"], passed[:2], min_margin=0.5) == "scores_do_not_separate"
    assert correctness_pair(np.array([0.9]), ["a"], passed[:1]) == "fewer_than_two_candidates"
    # bottom code is the same program as the top one: take the next distinct one
    assert correctness_pair(np.array([0.9, 0.1, 0.5]), ["a", "a", "c"], passed) == Pair(0, 2, 0.4)
    assert correctness_pair(np.array([0.9, 0.1]), ["a", "a"], passed[:2]) == "identical_code"
    assert correctness_pair(np.array([np.nan, 0.1]), ["a", "b"], passed[:2]) == "non_finite_scores"


def test_rejected_code_must_fail_a_trusted_test():
    # codes 0 and 1 behave alike (a prior such as multiplicity tells them apart): no evidence against 1
    passed = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0]], dtype=bool)
    assert correctness_pair(np.array([0.9, 0.2, 0.5]), ["a", "b", "c"], passed) == Pair(0, 2, pytest.approx(0.4))
    assert correctness_pair(np.array([0.9, 0.2]), ["a", "b"], passed[:2]) == "no_code_fails_a_trusted_test"


def test_trusted_codes_and_confidence():
    passed = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 0, 0]], dtype=bool)
    scores = np.array([0.9, 0.8, 0.5, 0.1])
    # code 2 passes every trusted test but also one the top code fails: not the top code's behaviour
    assert trusted_codes(passed, scores).tolist() == [True, True, False, False]
    assert trusted_codes(passed, np.array([0.9, 0.1, 0.9, 0.1])).tolist() == [True, True, True, False]  # ties: both sets
    assert confidence(passed, scores, np.array([3, 1, 4, 2])) == pytest.approx(0.4)
    assert confidence(passed, scores) == pytest.approx(0.5)
    assert confidence(np.zeros((0, 3), dtype=bool), np.array([])) == 0.0


def t(samples, ok=True):
    arr = np.array(samples, dtype=float)
    med = float(np.median(arr))
    return Timing(med, float(np.median(np.abs(arr - med))), tuple(samples), ok)


def test_efficiency_pair_needs_separation_beyond_noise_and_ten_percent():
    fast, slow = t([100, 101, 99, 100, 102]), t([150, 149, 151, 150, 152])
    pair = efficiency_pair({0: fast, 1: slow}, ["a", "b"])
    assert (pair.chosen, pair.rejected) == (0, 1) and pair.margin == 1.5
    overlapping = t([100, 160, 99, 100, 101])
    assert efficiency_pair({0: overlapping, 1: slow}, ["a", "b"]) == "within_noise"
    assert efficiency_pair({0: fast, 1: t([105, 106, 104, 105, 107])}, ["a", "b"]) == "within_noise"  # < 10%
    assert efficiency_pair({0: fast, 1: slow}, ["a", "a"]) == "identical_code"
    assert efficiency_pair({0: fast, 1: t([150] * 5, ok=False)}, ["a", "b"]) == "fewer_than_two_correct_timed"


def test_pairs_check_fails_on_unsound_rows(tmp_path):
    from codedpo_assets.assets.preferences import pairs_are_sound
    from codedpo_assets.assets.resources import DuckDBStore

    store = DuckDBStore(database=str(tmp_path / "db.duckdb"))
    row = {"partition_key": "p", "pair_id": "x", "prompt_id": "q", "seed_id": "s", "kind": "correctness", "ranker": "self_verification",
           "prompt": "P", "chosen": "same", "rejected": "same", "chosen_code_id": "a", "rejected_code_id": "b", "margin": 0.0,
           "chosen_score": 0.1, "rejected_score": 0.5, "trusted_test_ids": []}  # fmt: skip
    store.get().replace_partition("p", {"preference_pairs": [row]})
    result = pairs_are_sound(store=store)
    assert not result.passed
    assert result.metadata["chosen_equals_rejected"].value == 1
    assert result.metadata["correctness_not_ordered"].value == 1
    assert result.metadata["prompts_without_trusted_test"].value == 1
