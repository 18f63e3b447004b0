"""Self-verification scoring (CodeDPO), its consensus form (the default) and the ablation rankers.

Link(c, t) = code c passes test t. Tests passed by more (trusted) code become more trusted, and
code passing more trusted tests becomes more likely correct:
    S_c ← (1−d)·S_c + d·L·S_t        S_t ← (1−d)·S_t + d·Lᵀ·S_c
both from the previous iteration's values, all scores starting at 1. The update is linear, so
rescaling both vectors by one common factor per iteration (done for numerical stability) keeps
the result proportional to the unscaled iteration and never changes the order.

``consensus`` (default) runs the same iteration over CodeT's consensus sets (codes with identical
passed-test sets), each set weighted by the samples behind it and each test by its samples, and
scores a code by its set's score × √(samples that wrote this program). Its first iteration is
CodeT's dual agreement up to the program-level prior. On real model samples it beats the paper's
formula and matches CodeT (ahead by 2.2 points, within the noise of 82 problems; docs/benchmarks.md,
``benchmarks/ranking_real_bench.py``); on mutants (multiplicity 1) it is the paper's formula over
distinct behaviours.
"""

from __future__ import annotations

import numpy as np

RANKERS = ("consensus", "self_verification", "codet", "pass_count", "all_tests", "random")
DEFAULT_RANKER = RANKERS[0]


def _as_batch(passed: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(passed, dtype=bool)
    if arr.ndim == 2:
        return arr[None], True
    if arr.ndim != 3:
        raise ValueError(f"passed must be [codes, tests] or [prompts, codes, tests], got shape {arr.shape}")
    return arr, False


def self_verification_scores(
    passed: np.ndarray, *, damping: float = 0.85, iterations: int = 10, code_weights: np.ndarray | None = None,
    test_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(code_scores, test_scores) for one matrix ``[n_codes, n_tests]`` or a batch ``[B, N, M]``.

    In a batch, pad missing codes/tests with all-False rows/columns: they pass nothing and only
    decay, so they never outrank real items of their prompt (whose scores are ≥ theirs).
    ``code_weights`` / ``test_weights`` (default 1: the paper's formula) scale what a node passes
    on: a code written by k samples vouches for its tests k times, and likewise for tests.
    """
    if not 0 <= damping <= 1 or iterations < 0:
        raise ValueError(f"need 0 <= damping <= 1 and iterations >= 0, got {damping}, {iterations}")
    batch, single = _as_batch(passed)
    links = batch.astype(np.float64)
    b, n, m = links.shape
    codes_w, tests_w = _weights(code_weights, (b, n)), _weights(test_weights, (b, m))
    codes, tests = np.ones((b, n)), np.ones((b, m))
    for _ in range(iterations):
        new_codes = (1 - damping) * codes + damping * np.einsum("bnm,bm->bn", links, tests * tests_w)
        new_tests = (1 - damping) * tests + damping * np.einsum("bnm,bn->bm", links, codes * codes_w)
        scale = np.maximum(new_codes.max(axis=1, initial=0.0), new_tests.max(axis=1, initial=0.0))
        scale = np.where(scale > 0, scale, 1.0)[:, None]  # one common factor per prompt
        codes, tests = new_codes / scale, new_tests / scale
    return (codes[0], tests[0]) if single else (codes, tests)


def _weights(weights: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """Per-item sample counts (multiplicity) broadcast to the batch; 1 each when not given."""
    if weights is None:
        return np.ones(shape)
    arr = np.asarray(weights, dtype=np.float64)
    if arr.shape != shape[-arr.ndim :] or arr.ndim > len(shape) or (arr < 0).any():
        raise ValueError(f"weights must be non-negative counts of shape {shape[1:]} or {shape}, got {arr.shape}")
    return np.broadcast_to(arr, shape)


def consensus_sets(matrix: np.ndarray, code_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct passed-test rows [K, M], each code's set index [N], samples per set [K])."""
    rows, inverse = np.unique(matrix, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    return rows, inverse, np.bincount(inverse, weights=code_weights, minlength=len(rows))


def consensus_share(passed: np.ndarray, code_weights: np.ndarray | None = None) -> np.ndarray:
    """Per code: the share of all code samples that behave like it (same passed-test set) — the
    confidence signal of the pair filter: a top code most samples agree with is more often right."""
    matrix = np.asarray(passed, dtype=bool)
    if matrix.ndim != 2:
        raise ValueError(f"passed must be [codes, tests], got shape {matrix.shape}")
    weights = _weights(code_weights, (1, matrix.shape[0]))[0]
    if matrix.shape[0] == 0 or weights.sum() == 0:
        return np.zeros(matrix.shape[0])
    _, inverse, samples = consensus_sets(matrix, weights)
    return samples[inverse] / weights.sum()


def _consensus(batch: np.ndarray, code_weights: np.ndarray, test_weights: np.ndarray, **kwargs: float) -> np.ndarray:
    out = np.zeros(batch.shape[:2])
    for i, matrix in enumerate(batch):
        if matrix.shape[0] == 0:
            continue
        rows, inverse, samples = consensus_sets(matrix, code_weights[i])
        sets = self_verification_scores(rows, code_weights=samples, test_weights=test_weights[i], **kwargs)[0]
        out[i] = sets[inverse] * np.sqrt(code_weights[i])
    return out


def _codet(batch: np.ndarray, code_weights: np.ndarray, test_weights: np.ndarray) -> np.ndarray:
    """CodeT's dual agreement as published: codes with identical passed-test sets form a consensus
    set, scored |tests passed| × √|codes in the set|, both counted in samples (multiplicity)."""
    out = np.zeros(batch.shape[:2])
    for i, matrix in enumerate(batch):
        if matrix.shape[0] == 0:
            continue
        _, inverse, samples = consensus_sets(matrix, code_weights[i])
        out[i] = (matrix @ test_weights[i]) * np.sqrt(samples[inverse])
    return out


def rank_candidates(passed: np.ndarray, method: str = DEFAULT_RANKER, *, seed: int = 0, code_weights: np.ndarray | None = None,
                    test_weights: np.ndarray | None = None, **kwargs: float) -> np.ndarray:  # fmt: skip
    """Code scores (higher = more likely correct) for one matrix or a batch, by ``method``.

    ``code_weights`` / ``test_weights``: how many samples produced each code / test (default 1):
    ``consensus`` and ``codet`` count with them, ``random`` draws a *sample* (a program written k
    times is k times as likely to come first); ``self_verification`` is the paper's unweighted
    formula. ``kwargs`` (damping, iterations) go to the two self-verification rankers."""
    batch, single = _as_batch(passed)
    codes_w, tests_w = _weights(code_weights, batch.shape[:2]), _weights(test_weights, (batch.shape[0], batch.shape[2]))
    if method == "consensus":
        scores = _consensus(batch, codes_w, tests_w, **kwargs)
    elif method == "self_verification":
        scores = self_verification_scores(batch, **kwargs)[0]
    elif method == "pass_count":
        scores = batch.sum(axis=2).astype(np.float64)
    elif method == "all_tests":
        scores = (batch.all(axis=2) & (batch.shape[2] > 0)).astype(np.float64)
    elif method == "codet":
        scores = _codet(batch, codes_w, tests_w)
    elif method == "random":  # weighted order (Efraimidis–Spirakis): the first is a uniform pick among samples
        with np.errstate(divide="ignore"):
            scores = np.random.default_rng(seed).random(batch.shape[:2]) ** (1 / codes_w)
    else:
        raise ValueError(f"unknown ranker {method!r}; choose from {RANKERS}")
    return scores[0] if single else scores


def ranks(scores: np.ndarray) -> np.ndarray:
    """1 = best; ties share the best rank of their group (competition ranking)."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.array([1 + int(np.sum(scores > s + 1e-12 * max(1.0, abs(s)))) for s in scores], dtype=np.int64)


def top_set(scores: np.ndarray, rel_tol: float = 1e-9) -> np.ndarray:
    """Mask of the codes tied at the top score."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return np.zeros(0, dtype=bool)
    best = scores.max()
    return np.isclose(scores, best, rtol=rel_tol, atol=1e-12)
