"""Scoring formula on hand-computed matrices, each ranker, ties and degenerate shapes."""

import numpy as np
import pytest

from codedpo_assets.scoring import code_scores, ranks, self_verification_scores, top_set


def reference(passed, d=0.85, iterations=10):
    """The paper's update, unscaled, in plain Python."""
    n, m = len(passed), len(passed[0]) if passed else 0
    c, t = [1.0] * n, [1.0] * m
    for _ in range(iterations):
        c2 = [(1 - d) * c[i] + d * sum(passed[i][j] * t[j] for j in range(m)) for i in range(n)]
        t2 = [(1 - d) * t[j] + d * sum(passed[i][j] * c[i] for i in range(n)) for j in range(m)]
        c, t = c2, t2
    return np.array(c), np.array(t)


MATRICES = [
    [[1, 1, 1], [1, 1, 0], [0, 0, 1]],
    [[1, 0], [1, 0], [0, 1]],
    [[1, 1], [1, 1]],  # all pass: all tied
    [[0, 0], [0, 0]],  # all fail: all tied
    [[1, 0, 0, 1], [0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]],
]


@pytest.mark.parametrize("matrix", MATRICES)
def test_scores_are_proportional_to_the_unscaled_update(matrix):
    codes, tests = self_verification_scores(np.array(matrix, dtype=bool))
    ref_c, ref_t = reference(matrix)
    factor = ref_c.max() / codes.max() if codes.max() else 1.0
    np.testing.assert_allclose(codes * factor, ref_c, rtol=1e-9)
    np.testing.assert_allclose(tests * factor, ref_t, rtol=1e-9)  # one common factor for both


def test_hand_computed_one_iteration():
    # codes [[1,0],[1,1]], d=0.5, one step from ones: c = 0.5 + 0.5*[1, 2] = [1, 1.5]; t = 0.5 + 0.5*[2, 1] = [1.5, 1]
    codes, tests = self_verification_scores(np.array([[1, 0], [1, 1]], dtype=bool), damping=0.5, iterations=1)
    np.testing.assert_allclose(codes, [1 / 1.5, 1.0])
    np.testing.assert_allclose(tests, [1.0, 1 / 1.5])


def test_empty_and_batched_shapes():
    codes, tests = self_verification_scores(np.zeros((0, 3), dtype=bool))
    assert codes.shape == (0,) and tests.shape == (3,)
    codes, tests = self_verification_scores(np.zeros((2, 0), dtype=bool))
    assert codes.shape == (2,) and np.isfinite(codes).all()
    batch = np.zeros((2, 3, 3), dtype=bool)
    batch[0] = MATRICES[0]
    batch[1, :2, :2] = MATRICES[2]  # padded prompt
    c, _t = self_verification_scores(batch)
    np.testing.assert_allclose(c[0], self_verification_scores(np.array(MATRICES[0], dtype=bool))[0])
    assert c.shape == (2, 3) and c[1, 2] < c[1, 0]  # padding never outranks real codes
    big = np.random.default_rng(0).random((50, 15, 15)) < 0.5
    assert np.isfinite(self_verification_scores(big, iterations=200)[0]).all()


def test_rankers():
    m = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=bool)
    assert code_scores(m, "pass_count").tolist() == [2, 2, 1, 3]
    assert code_scores(m, "all_tests").tolist() == [0, 0, 0, 1]
    # CodeT as published: |tests passed| × √|codes in the consensus set|, both counted in samples
    assert code_scores(m, "codet").tolist() == pytest.approx([2 * 2**0.5, 2 * 2**0.5, 1, 3])
    assert code_scores(m, "codet", code_weights=[1, 1, 9, 1]).tolist() == pytest.approx([2 * 2**0.5, 2 * 2**0.5, 3, 3])
    r1, r2 = code_scores(m, "random", seed=3), code_scores(m, "random", seed=3)
    assert (r1 == r2).all() and not (r1 == code_scores(m, "random", seed=4)).all()
    # random draws a sample, not a unique program: one written 8 of 10 times comes first ~80 % of draws
    firsts = np.bincount([code_scores(m, "random", seed=s, code_weights=[1, 1, 8, 0]).argmax() for s in range(2000)], minlength=4)
    assert 0.75 < firsts[2] / 2000 < 0.85 and firsts[3] == 0
    with pytest.raises(ValueError, match="weights"):
        code_scores(m, "codet", code_weights=[1, 2])
    sv = code_scores(m, "self_verification")
    assert sv.argmax() == 3 and sv[0] == pytest.approx(sv[1])
    with pytest.raises(ValueError, match="unknown ranker"):
        code_scores(m, "vibes")


def weighted_reference(passed, code_w, test_w, d=0.85, iterations=10):
    """The weighted update, unscaled, in plain Python: a node passes on its score × its samples."""
    n, m = len(passed), len(passed[0])
    c, t = [1.0] * n, [1.0] * m
    for _ in range(iterations):
        c2 = [(1 - d) * c[i] + d * sum(passed[i][j] * test_w[j] * t[j] for j in range(m)) for i in range(n)]
        t2 = [(1 - d) * t[j] + d * sum(passed[i][j] * code_w[i] * c[i] for i in range(n)) for j in range(m)]
        c, t = c2, t2
    return np.array(c)


def test_weighted_self_verification_and_the_consensus_ranker():
    rows = [[1, 1, 0], [0, 0, 1], [1, 0, 1]]
    c, _ = self_verification_scores(np.array(rows, dtype=bool), code_weights=[3, 1, 2], test_weights=[1, 2, 1])
    ref = weighted_reference(rows, [3, 1, 2], [1, 2, 1])
    np.testing.assert_allclose(c / c.max(), ref / ref.max())
    # consensus: the iteration over consensus sets (weighted by their samples) × √(samples of the program)
    m = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1]], dtype=bool)
    weights = np.array([4.0, 1.0, 2.0, 1.0])
    sets = weighted_reference([[1, 1, 0], [0, 0, 1], [1, 0, 1]], [5, 2, 1], [1, 1, 1])
    got = code_scores(m, "consensus", code_weights=weights)
    expected = sets[[0, 0, 1, 2]] * np.sqrt(weights)
    np.testing.assert_allclose(got / got.max(), expected / expected.max())
    assert got.argmax() == 0 and got[0] > got[1]  # same behaviour: the program written more often leads
    # one iteration without damping is CodeT's order (|tests passed| × √samples) when each set is one program
    distinct = np.array([[1, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=bool)
    codet_order = np.argsort(-code_scores(distinct, "codet", code_weights=[5, 9, 1]), kind="stable")
    one = code_scores(distinct, "consensus", code_weights=[5, 9, 1], damping=1.0, iterations=1)
    assert np.argsort(-one, kind="stable").tolist() == codet_order.tolist()
    # multiplicity changes the winner: a behaviour written by many samples beats a lone program passing one more test
    lone = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=bool)
    assert code_scores(lone, "consensus").argmax() == 0 and code_scores(lone, "consensus", code_weights=[1, 20]).argmax() == 1
    # the paper's formula ignores multiplicity
    assert code_scores(lone, "self_verification", code_weights=[1, 20]).argmax() == 0
    assert code_scores(np.zeros((3, 0), dtype=bool), "consensus", code_weights=[1, 5, 2]).argmax() == 1  # no tests: most written
    assert np.isfinite(code_scores(np.random.default_rng(1).random((4, 15, 15)) < 0.5, "consensus")).all()


def test_ranks_and_top_set_keep_ties():
    assert ranks(np.array([0.5, 0.9, 0.9, 0.1])).tolist() == [3, 1, 1, 4]
    assert top_set(np.array([0.5, 0.9, 0.9 + 1e-15, 0.1])).tolist() == [False, True, True, False]
    assert top_set(np.array([])).tolist() == []
