"""Trusted tests and pair rules: ties, identical code, noise, degenerate prompts."""

from dataclasses import replace

import numpy as np
import pytest

from codedpo_assets.pairs import Pair, correctness_pair, efficiency_pair, trusted_codes, trusted_tests
from codedpo_assets.sandbox.timing import Timing
from codedpo_assets.scoring import rank_candidates


def ranked(passed, method="pass_count", fingerprints=None, weights=None):
    return rank_candidates(np.array(passed, dtype=bool), method, fingerprints=None if fingerprints is None else np.array(fingerprints, dtype=object),
                           code_weights=weights)  # fmt: skip


def test_trusted_tests_are_the_chosen_codes():
    r = ranked([[1, 1, 0], [1, 0, 1], [0, 0, 0]])
    assert r.chosen == 0 and trusted_tests(r).tolist() == [True, True, False]
    assert trusted_tests(ranked(np.zeros((0, 2)))).tolist() == [False, False]


def test_correctness_pair_rules():
    passed = [[1, 1], [0, 0], [1, 0]]
    assert correctness_pair(ranked(passed), ["a", "b", "c"]) == Pair(0, 1, 2.0, 0, 1)
    # the lowest-scored failing cluster is the same program as the chosen one: take the next cluster
    assert correctness_pair(ranked(passed), ["a", "a", "c"]) == Pair(0, 2, 1.0, 0, 2)
    assert correctness_pair(ranked(passed[:2]), ["a", "a"]) == "identical_code"
    assert correctness_pair(ranked([[1, 1], [1, 1]]), ["a", "b"]) == "no_code_fails_a_trusted_test"
    assert correctness_pair(ranked([[0, 0], [0, 0]]), ["a", "b"]) == "no_trusted_tests"
    assert correctness_pair(ranked(passed[:1]), ["a"]) == "fewer_than_two_candidates"
    assert correctness_pair(ranked(passed[:2]), ["a", "b"], min_margin=5.0) == "scores_do_not_separate"
    assert correctness_pair(replace(ranked(passed[:2]), scores=np.array([np.nan, 0.1])), ["a", "b"]) == "non_finite_scores"


def test_rejected_code_must_fail_a_trusted_test_and_is_its_clusters_most_written():
    # codes 0 and 1 behave alike: a prior (multiplicity) tells them apart, which is no evidence against 1
    passed = [[1, 1, 0], [1, 1, 0], [1, 0, 0], [1, 0, 0]]
    prints = [["=1", "=2", "=3"], ["=1", "=2", "=3"], ["=1", "=5", "=3"], ["=1", "=5", "=3"]]
    r = ranked(passed, "behaviour", prints, weights=[3, 2, 1, 4])
    assert r.chosen == 0 and r.clusters.of_code.tolist() == [0, 0, 1, 1]
    assert correctness_pair(r, ["a", "b", "c", "d"], np.array([3, 2, 1, 4])) == Pair(
        0, 3, pytest.approx(r.scores[0] - r.scores[3]), 0, 1
    )
    assert correctness_pair(ranked(passed[:2], "behaviour", prints[:2]), ["a", "b"]) == "no_code_fails_a_trusted_test"


def test_trusted_codes_are_the_chosen_codes_behaviour_cluster():
    # codes 0-2 pass the same tests, but code 2 returns another value where the test is silent
    passed = [[1, 1, 0], [1, 1, 0], [1, 1, 0], [1, 0, 0]]
    prints = [["=1", "=2", "=3"], ["=1", "=2", "=3"], ["=1", "=2", "=4"], ["=1", "=9", "=3"]]
    r = ranked(passed, "behaviour", prints, weights=[2, 1, 1, 1])
    assert trusted_codes(r).tolist() == [True, True, False, False]
    assert 0 < r.confidence < 1


def t(samples, ok=True):
    arr = np.array(samples, dtype=float)
    med = float(np.median(arr))
    return Timing(med, float(np.median(np.abs(arr - med))), tuple(samples), ok)


def test_efficiency_pair_needs_separation_beyond_noise_and_ten_percent():
    fast, slow = t([100, 101, 99, 100, 102]), t([150, 149, 151, 150, 152])
    pair = efficiency_pair({0: fast, 1: slow}, ["a", "b"], cluster=3)
    assert (pair.chosen, pair.rejected, pair.chosen_cluster, pair.rejected_cluster) == (0, 1, 3, 3) and pair.margin == 1.5
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
