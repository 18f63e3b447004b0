"""Behaviour fingerprints (sandbox), clusters, functional overlap, the behaviour ranker, calibrated
confidence, and the public path from a real PassMatrix to pairs."""

import itertools
import math

import numpy as np
import pytest

from codedpo_assets import calibration
from codedpo_assets.behaviour import behaviour_clusters, distinct_inputs, functional_overlap
from codedpo_assets.pairs import Pair, correctness_pair, trusted_codes, trusted_tests
from codedpo_assets.sandbox import run_pass_matrix
from codedpo_assets.sandbox.pool import Pool
from codedpo_assets.sandbox.verdicts import fingerprint_outcome, fingerprint_value
from codedpo_assets.scoring import behaviour_scores, code_scores, rank_candidates


@pytest.fixture(scope="module")
def pool():
    p = Pool(2)
    yield p
    p.close()


def test_fingerprints_are_canonical_under_equality():
    assert fingerprint_value(["S", [["i", "2"], ["i", "1"]]]) == fingerprint_value(
        ["F", [["i", "1"], ["i", "2"]]]
    )  # {2, 1} == frozenset({1, 2})
    d1 = ["d", [[["s", "a"], ["i", "1"]], [["s", "b"], ["i", "2"]]]]
    d2 = ["d", [[["s", "b"], ["i", "2"]], [["s", "a"], ["i", "1"]]]]
    assert fingerprint_value(d1) == fingerprint_value(d2)  # dicts compare without order
    assert fingerprint_value(["B", True]) == fingerprint_value(["i", "1"]) == fingerprint_value(["f", "1.0"])  # True == 1 == 1.0
    assert fingerprint_value(["l", [["i", "1"]]]) != fingerprint_value(["t", [["i", "1"]]])  # [1] != (1,)
    assert fingerprint_value(["f", "0.30000000000000004"]) != fingerprint_value(["f", "0.3"])
    assert fingerprint_value(["f", "nan"]) == fingerprint_value(["f", "nan"]) == "=" + '["f","nan"]'  # stable, though nan != nan
    assert fingerprint_value(["l", [["i", str(k)] for k in range(100)]]).startswith("#")  # long: hashed
    assert fingerprint_value(["S", [["s", "x"], 7]]) == "!unencodable"  # malformed: a stable fingerprint, no exception
    assert (
        fingerprint_value(["S", [["s", "\udcff"]]]) == '=["S",[["s","\\udcff"]]]'
    )  # lone surrogates (odd bytes decoded): escaped ASCII
    assert fingerprint_value(["s", "é"]) == '=["s","\\u00e9"]' and fingerprint_value(["b", "fffe"]) == '=["b","fffe"]'
    assert fingerprint_outcome("error", "KeyError: 'x'") == "!error:KeyError"
    assert fingerprint_outcome("fail", "unverifiable result: unsupported result type Rigged") == "!unverifiable"
    assert fingerprint_outcome("timeout") == "!timeout"


ADVERSARIAL = {
    "honest": "def f(x):\n    return sorted(set(x))\n",
    "same_values_other_text": "def f(x):\n    out = list(set(x))\n    out.sort()\n    return out\n",
    "prints_and_mutates": "def f(x):\n    print('noise', x)\n    x.append(99)\n    out = sorted(set(x))\n    out.remove(99)\n    return out\n",
    "rigged_eq": (
        "class Rigged(list):\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n"
        "def f(x):\n    return Rigged(sorted(set(x)))\n"
    ),
    "recursive": "def f(x):\n    a = []\n    a.append(a)\n    return a\n",
    "nan": "def f(x):\n    return float('nan')\n",
    "huge": "def f(x):\n    return list(range(100000))\n",
    "raises": "def f(x):\n    return x[100]\n",
    "odd_text": "def f(x):\n    return [b'\\xff\\xfe'.decode('utf-8', 'surrogateescape'), b'\\xff']\n",
    "loops": "def f(x):\n    while True:\n        pass\n",
}
TESTS = ["assert f([3, 1, 3]) == [1, 3]", "assert f([]) == []", "assert f([2, 2]) == [2]", "y = f([5, 4])\nassert y[0] < y[1]"]


def test_sandbox_fingerprints_adversarial_candidates(pool):
    names = list(ADVERSARIAL)
    m = run_pass_matrix([ADVERSARIAL[k] for k in names], TESTS, pool=pool, time_limit_s=0.5)
    row = {k: m.fingerprint[i] for i, k in enumerate(names)}
    assert m.fingerprint.shape == (len(names), len(TESTS)) and m.inputs[:3] == ["f([3, 1, 3])", "f([])", "f([2, 2])"]
    assert row["honest"][0] == '=["l",[["i","1"],["i","3"]]]'
    # printing and mutating the (fresh) argument change nothing another cell sees
    assert (row["same_values_other_text"][:3] == row["honest"][:3]).all() and (
        row["prints_and_mutates"][:3] == row["honest"][:3]
    ).all()
    assert (row["rigged_eq"][:3] == "!unverifiable").all() and not m.passed[names.index("rigged_eq"), :3].any()  # never a pass
    assert (row["recursive"][:3] == "!unverifiable").all()
    assert row["nan"][0] == row["nan"][1] == '=["f","nan"]' and not m.passed[names.index("nan"), :3].any()
    assert row["huge"][0].startswith(("#", "!")) and not m.passed[names.index("huge"), :3].any()
    assert row["raises"][1] == "!error:IndexError" and (row["loops"][:3] == "!timeout").all()
    assert row["odd_text"][0] == '=["l",[["s","\\udcff\\udcfe"],["b","ff"]]]' and row["odd_text"].tolist() == [
        row["odd_text"][0]
    ] * 3 + ["!error:TypeError"]  # str < bytes
    assert row["honest"][3] == "!pass" and row["raises"][3] == "!error:IndexError"  # statement tests: their outcome
    again = run_pass_matrix([ADVERSARIAL[k] for k in names], TESTS, pool=pool, time_limit_s=0.5)
    assert (again.fingerprint[:8] == m.fingerprint[:8]).all()  # stable run to run


def test_clusters_group_identical_behaviour_with_multiplicity():
    prints = np.array([["=1", "=2"], ["=1", "=2"], ["=1", "=3"], ["!error:E", "!error:E"]], dtype=object)
    passed = np.array([[1, 1], [1, 1], [1, 0], [0, 0]], dtype=bool)
    c = behaviour_clusters(prints, passed, np.array([2.0, 3.0, 1.0, 4.0]))
    assert c.of_code.tolist() == [0, 0, 1, 2] and c.samples.tolist() == [5, 1, 4] and c.programs.tolist() == [2, 1, 1]
    assert c.mass().tolist() == pytest.approx([0.5, 0.1, 0.4]) and c.passed[1].tolist() == [True, False]
    # without fingerprints the passed-test vector is the behaviour (CodeT's consensus sets)
    assert behaviour_clusters(None, passed).of_code.tolist() == [0, 0, 1, 2]
    with pytest.raises(ValueError, match="one fingerprint per cell"):
        behaviour_clusters(prints[:, :1], passed)
    # two tests on one input count once in the overlap
    assert distinct_inputs(["f(1)", "f(2)", "f(1)"], 3).tolist() == [0, 1]
    with pytest.raises(ValueError, match="one input per test"):
        distinct_inputs(["f(1)"], 2)


def test_functional_overlap_counts_equal_values_only():
    prints = np.array([["=1", "=2", "!error:E"], ["=1", "=5", "!error:E"], ["=7", "=5", "!timeout"]], dtype=object)
    c = behaviour_clusters(prints, np.zeros((3, 3), dtype=bool))
    o = functional_overlap(c)
    np.testing.assert_allclose(o, [[1, 1 / 3, 0], [1 / 3, 1, 1 / 3], [0, 1 / 3, 1]])  # shared errors are no agreement
    assert functional_overlap(behaviour_clusters(np.zeros((2, 0), dtype=object), np.zeros((2, 0), dtype=bool))).tolist() == [
        [1.0]
    ]  # no tests: one behaviour


def test_behaviour_ranker_uses_outputs_not_only_verdicts():
    # The only test (expected 1) is wrong; codes 0-2 fail it with three different values and code 3 (a
    # popular wrong answer) passes it. On the second input codes 0 and 1 agree with code 2 and each other.
    prints = np.array([["=2", "=10"], ["=2", "=10"], ["=3", "=10"], ["=1", "=11"]], dtype=object)
    passed = np.array([[0], [0], [0], [1]], dtype=bool)
    weights = np.array([3.0, 3.0, 1.0, 2.0])
    scores = code_scores(np.column_stack([passed, passed]), "behaviour", code_weights=weights, fingerprints=prints)
    assert scores.argmax() == 3  # agreement with the tests counts (a cluster passing nothing is worth ~0)
    both = np.array([[1, 0], [1, 0], [0, 0], [0, 1]], dtype=bool)
    prints = np.array([["=1", "=10"], ["=1", "=10"], ["=3", "=10"], ["=3", "=11"]], dtype=object)
    scores = code_scores(both, "behaviour", code_weights=weights, fingerprints=prints)
    assert scores[0] == scores[1] > scores[3]  # the larger, test-passing behaviour, with the overlapping cluster's support
    c = behaviour_clusters(prints, both, weights)
    assert behaviour_scores(c, np.ones(2), mass_exponent=1.0).argmax() == 0
    # no tests at all: one behaviour, every code tied; the ranking chooses the most-written program
    assert rank_candidates(np.zeros((3, 0), dtype=bool), "behaviour", code_weights=[1, 5, 2]).chosen == 1


def test_calibration_fit_recovers_a_logistic_model_and_reports_reliability():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    truth = (0.5, 1.5, -1.0)
    y = (rng.random(4000) < calibration.predict(x, truth)).astype(float)
    fitted = calibration.fit(x, y, l2=0.0)
    assert fitted == pytest.approx(truth, abs=0.15)
    table = calibration.reliability(calibration.predict(x, fitted), y)
    assert sum(r[1] for r in table) == 4000 and all(abs(r[2] - r[3]) < 0.06 for r in table if r[1] > 200)
    with pytest.raises(ValueError, match="one label per"):
        calibration.fit(x, y[:3])
    with pytest.raises(ValueError, match="shares"):
        calibration.features(1.5, 0.2)
    # the shipped models: more agreement among programs and with the tests means more confidence, for every ranker
    for coef in calibration.COEFFICIENTS.values():
        high, mid, low = (calibration.predict(calibration.features(m, a), coef) for m, a in ((0.6, 0.8), (0.1, 0.8), (0.1, 0.0)))
        assert 0 < low < mid < high < 1


def test_public_path_from_a_pass_matrix_to_pairs(pool):
    codes = ["def f(x):\n    return x * 2\n", "def f(x):\n    return x + x\n", "def f(x):\n    return x * 2 + (x == 3)\n",
             "def f(x):\n    return x ** 2\n"]  # fmt: skip
    tests = ["assert f(1) == 2", "assert f(2) == 4", "assert f(3) == 6", "assert f(0) == 0", "assert f(3) == 7"]
    m = run_pass_matrix(codes, tests, pool=pool)
    r = rank_candidates(m, "behaviour", code_weights=[4, 2, 1, 1])
    assert r.method == "behaviour" and r.chosen == 0 and r.clusters.of_code.tolist() == [0, 0, 1, 2]
    assert trusted_codes(r).tolist() == [True, True, False, False] and trusted_tests(r).tolist() == [
        True,
        True,
        True,
        True,
        False,
    ]
    assert 0.5 < r.confidence < 1 and math.isclose(r.agreement, 4 / 5)
    pair = correctness_pair(r, ["a", "b", "c", "d"], np.array([4, 2, 1, 1]))
    assert (
        isinstance(pair, Pair)
        and pair.chosen == 0
        and pair.rejected in (2, 3)
        and pair.rejected_cluster == r.clusters.of_code[pair.rejected]
    )
    with pytest.raises(ValueError, match="one prompt"):
        rank_candidates(np.zeros((2, 2, 2), dtype=bool))


def test_confidence_is_split_among_tied_top_behaviours():
    # two behaviours, two programs each, each passing half of the conflicting tests: the ranker cannot choose
    passed = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=bool)
    prints = np.array([["=1", "=1"], ["=1", "=1"], ["=0", "=0"], ["=0", "=0"]], dtype=object)
    tied = rank_candidates(passed, "consensus", fingerprints=prints)
    alone = rank_candidates(passed[:3], "consensus", fingerprints=prints[:3])
    assert tied.tie_share == 0.5 and alone.tie_share == 1.0
    expected = calibration.predict(calibration.features(0.5, 0.5), calibration.COEFFICIENTS["consensus"]) * 0.5
    assert tied.confidence == pytest.approx(expected) and correctness_pair(tied, ["a", "b", "c", "d"]) == "scores_do_not_separate"


def test_unverified_verdicts_rank_nothing_and_are_never_trusted():
    # test 1 is a statement test, judged inside the candidate's process: code 1 "passes" it (a forged
    # line would look the same) and fails the verified test; it must gain nothing from it
    passed = np.array([[1, 0], [0, 1], [1, 0]], dtype=bool)
    prints = np.array([["=1", "!fail"], ["=2", "!pass"], ["=1", "!fail"]], dtype=object)
    for method in ("consensus", "behaviour", "codet"):
        r = rank_candidates(passed, method, fingerprints=prints, verified=[True, False], code_weights=[1, 5, 1])
        assert r.clusters.of_code[r.chosen] == r.clusters.of_code[0], method  # without the forged pass, code 1 passes nothing
        assert trusted_tests(r).tolist() == [True, False] and r.agreement == 1.0
    only_statement = rank_candidates(passed[:, 1:], "consensus", fingerprints=prints[:, 1:], verified=[False])
    assert (
        trusted_tests(only_statement).tolist() == [False]
        and correctness_pair(only_statement, ["a", "b", "c"]) == "no_trusted_tests"
    )


def test_monotone_ceiling_matches_brute_force():
    """The best monotone selection, checked against every subset on small random cases (ties in both features included)."""
    rng = np.random.default_rng(7)
    for _ in range(150):
        n = int(rng.integers(2, 9))
        x1, x2, good = rng.integers(0, 4, n).astype(float), rng.integers(0, 4, n).astype(float), rng.integers(0, 2, n)
        size = int(rng.integers(0, n + 1))
        brute = -1
        for subset in itertools.combinations(range(n), size):
            chosen = set(subset)
            if all(j in chosen for i in chosen for j in range(n) if x1[j] >= x1[i] and x2[j] >= x2[i]):
                brute = max(brute, int(good[list(subset)].sum()))
        assert calibration.monotone_ceiling(x1, x2, good, size) == brute
    # a wrong item that dominates a right one caps what any threshold can keep
    assert calibration.monotone_ceiling([0.9, 0.1], [0.9, 0.1], [0, 1], 1) == 0
    with pytest.raises(ValueError):
        calibration.monotone_ceiling([1.0], [1.0, 2.0], [1], 1)
