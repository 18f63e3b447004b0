"""Rankers over a prompt's pass matrix, and the one public path from a matrix to a ranking.

``rank_candidates(matrix, ...)`` takes the ``PassMatrix`` of ``run_pass_matrices`` (or a bare
passed-test array) with the samples behind each code and test, and returns a :class:`Ranking`:
every code's score, the behaviour clusters, the chosen code and a calibrated confidence that the
chosen code is correct. The ``pairs`` functions take that ranking; the assets run exactly this, so
a benchmark or a notebook reproduces what the pipeline does.

``behaviour`` ranks behaviour clusters (:mod:`codedpo_assets.behaviour`: programs with
identical outputs on every test input) by SRank's form (arXiv 2311.03366): a cluster is worth
``mass**MASS_EXPONENT × agreement`` (its share of the code samples, and the weighted share of the
generated tests it passes), and its score sums that worth over every cluster, weighted by their
functional overlap (the share of inputs on which both return the same value). Outputs, not only
pass/fail: two programs that fail a wrong test with *different* values are not alike, and a
cluster that agrees with a large, test-passing one on most inputs is supported by it.

Self-verification (CodeDPO): link(c, t) = code c passes test t. Tests passed by more (trusted)
code become more trusted, and code passing more trusted tests becomes more likely correct:
    S_c ← (1−d)·S_c + d·L·S_t        S_t ← (1−d)·S_t + d·Lᵀ·S_c
both from the previous iteration's values, all scores starting at 1. The update is linear, so
rescaling both vectors by one common factor per iteration (done for numerical stability) keeps
the result proportional to the unscaled iteration and never changes the order.

``consensus`` (default) runs the same iteration over CodeT's consensus sets (codes with identical
passed-test sets), each set weighted by the samples behind it and each test by its samples, and
scores a code by its set's score × √(samples that wrote this program). Its first iteration is
CodeT's dual agreement up to the program-level prior; on mutants (multiplicity 1) it is the
paper's formula over distinct behaviours.

Why ``consensus`` stays the default: on real samples ``behaviour`` is ahead out of fold (46.6 vs
42.7 pass@1) but the paired interval of the gain includes zero, and on the mutant benchmark
(``benchmarks/scoring_bench.py``: distinct mutants are mass there, and equal-behaving mutants are
a popular *wrong* behaviour) it falls from 0.968 to 0.835. Figures of every ranker:
docs/benchmarks.md (``benchmarks/ranking_real_bench.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codedpo_assets import calibration
from codedpo_assets.behaviour import Clusters, behaviour_clusters, functional_overlap

RANKERS = ("consensus", "behaviour", "self_verification", "codet", "pass_count", "all_tests", "random")
DEFAULT_RANKER = RANKERS[0]
MASS_EXPONENT = 2.0  # behaviour: a cluster's worth is mass**γ × agreement; γ chosen by cross-validation (docs/benchmarks.md)
_NO_AGREEMENT = 1e-6  # worth when no test is passed: then the mass alone orders clusters


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


def _weights(weights: Sequence[float] | np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
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


def _consensus(batch: np.ndarray, code_weights: np.ndarray, test_weights: np.ndarray, **kwargs: Any) -> np.ndarray:
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


def agreement(passed: np.ndarray, test_weights: np.ndarray) -> np.ndarray:
    """Per row: the weighted share of the tests it passes (0 without tests)."""
    total = float(np.sum(test_weights))
    return (np.asarray(passed, dtype=np.float64) @ test_weights) / total if total > 0 else np.zeros(len(passed))


def behaviour_scores(clusters: Clusters, test_weights: np.ndarray, mass_exponent: float = MASS_EXPONENT) -> np.ndarray:
    """Per cluster: Σ_l overlap(k, l) × mass_l**γ × agreement_l (SRank's form, samples as mass)."""
    worth = clusters.mass() ** mass_exponent * (agreement(clusters.passed, test_weights) + _NO_AGREEMENT)
    return functional_overlap(clusters) @ worth


def _behaviour(batch: np.ndarray, code_weights: np.ndarray, test_weights: np.ndarray, fingerprints: np.ndarray | None,
               inputs: Sequence[str] | None, mass_exponent: float) -> np.ndarray:  # fmt: skip
    out = np.zeros(batch.shape[:2])
    prints = None if fingerprints is None else np.asarray(fingerprints, dtype=object).reshape(batch.shape)
    for i, matrix in enumerate(batch):
        if matrix.shape[0]:
            clusters = behaviour_clusters(None if prints is None else prints[i], matrix, code_weights[i], inputs)
            out[i] = behaviour_scores(clusters, test_weights[i], mass_exponent)[clusters.of_code]
    return out


def code_scores(passed: np.ndarray, method: str = DEFAULT_RANKER, *, seed: int = 0, code_weights: np.ndarray | None = None,
                test_weights: np.ndarray | None = None, fingerprints: np.ndarray | None = None, inputs: Sequence[str] | None = None,
                mass_exponent: float = MASS_EXPONENT, **kwargs: Any) -> np.ndarray:  # fmt: skip
    """Code scores (higher = more likely correct) for one matrix or a batch, by ``method``.

    ``code_weights`` / ``test_weights``: how many samples produced each code / test (default 1):
    ``behaviour``, ``consensus`` and ``codet`` count with them, ``random`` draws a *sample* (a
    program written k times is k times as likely to come first); ``self_verification`` is the
    paper's unweighted formula. ``fingerprints`` (same shape as ``passed``) and ``inputs`` (one
    per test) feed ``behaviour``; without them it clusters by passed tests. ``kwargs`` (damping,
    iterations) go to the two self-verification rankers."""
    batch, single = _as_batch(passed)
    codes_w, tests_w = _weights(code_weights, batch.shape[:2]), _weights(test_weights, (batch.shape[0], batch.shape[2]))
    if method == "behaviour":
        scores = _behaviour(batch, codes_w, tests_w, fingerprints, inputs, mass_exponent)
    elif method == "consensus":
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


@dataclass(frozen=True)
class Ranking:
    """One prompt ranked: what the pairs, trusted tests and timings are built from."""

    method: str
    scores: np.ndarray  # [codes] higher = more likely correct
    clusters: Clusters  # behaviour clusters (the same for every ranker)
    chosen: int  # the code a correctness pair chooses: the most-written top-scored code (-1: no codes)
    confidence: float  # calibrated P(chosen code correct) (:mod:`codedpo_assets.calibration`), split among tied top clusters
    agreement: float  # weighted share of the generated tests the chosen code passes
    tie_share: float  # the chosen cluster's share of the samples of all clusters tied at the top (1: no tie)
    counted: np.ndarray  # [tests of the matrix] ranked on (the verified ones); clusters.passed has these columns

    @property
    def top_cluster(self) -> int:
        return int(self.clusters.of_code[self.chosen]) if self.chosen >= 0 else -1

    def cluster_scores(self) -> np.ndarray:
        """Per cluster: the best score among its codes."""
        out = np.full(self.clusters.size, -np.inf)
        np.maximum.at(out, self.clusters.of_code, self.scores)
        return out


def rank_candidates(matrix: Any, method: str = DEFAULT_RANKER, *, code_weights: Sequence[float] | np.ndarray | None = None,
                    test_weights: Sequence[float] | np.ndarray | None = None, fingerprints: np.ndarray | None = None, inputs: Sequence[str] | None = None,
                    verified: Sequence[bool] | None = None, seed: int = 0, mass_exponent: float = MASS_EXPONENT,
                    coefficients: Sequence[float] | None = None, **kwargs: Any) -> Ranking:  # fmt: skip
    """The default path from one prompt's pass matrix to its ranking, as the assets run it.

    ``matrix``: a ``PassMatrix`` (its ``passed``, ``fingerprint``, ``inputs`` and ``verified`` are
    used) or a [codes, tests] passed array (then give ``fingerprints`` / ``inputs`` / ``verified``
    if you have them). Only verified tests count (judged in this process from plain data): a
    statement test's verdict comes from the candidate's own process, which a candidate that knows
    the sandbox can forge, so it ranks nothing, is never trusted and rejects nothing.
    ``code_weights`` / ``test_weights``: samples behind each code / test (dedupe multiplicity).
    ``coefficients``: of the confidence model (default: the ranker's own, ``calibration.COEFFICIENTS``).
    Then ``pairs.correctness_pair(ranking, ...)``, ``pairs.trusted_tests(ranking)`` and
    ``pairs.trusted_codes(ranking)`` give what the pipeline's assets store."""
    passed = np.asarray(getattr(matrix, "passed", matrix), dtype=bool)
    if passed.ndim != 2:
        raise ValueError(f"one prompt's [codes, tests] matrix expected, got shape {passed.shape}")
    prints = getattr(matrix, "fingerprint", fingerprints)
    inputs = getattr(matrix, "inputs", None) or inputs
    verified = getattr(matrix, "verified", verified)
    n, m = passed.shape
    codes_w, tests_w = _weights(code_weights, (1, n))[0], _weights(test_weights, (1, m))[0]
    counted = np.ones(m, dtype=bool) if verified is None else np.asarray(verified, dtype=bool)
    keep = np.flatnonzero(counted)
    if len(keep) < m:
        passed, tests_w = passed[:, keep], tests_w[keep]
        prints = None if prints is None else np.asarray(prints, dtype=object)[:, keep]
        inputs = None if inputs is None else [inputs[int(j)] for j in keep]
    clusters = behaviour_clusters(prints, passed, codes_w, inputs)
    if method == "behaviour":  # the clusters are already here
        scores = behaviour_scores(clusters, tests_w, mass_exponent)[clusters.of_code] if n else np.zeros(0)
    else:
        scores = code_scores(passed, method, seed=seed, code_weights=codes_w, test_weights=tests_w, **kwargs)
    if n == 0:
        return Ranking(method, scores, clusters, -1, 0.0, 0.0, 0.0, counted)
    top = np.flatnonzero(top_set(scores))
    chosen = int(top[np.argmax(codes_w[top])])  # most-written among the tied top codes, then the first
    cluster = clusters.of_code[chosen]
    passes = float(agreement(clusters.passed[cluster][None], tests_w)[0])
    coef = calibration.COEFFICIENTS[method] if coefficients is None else coefficients
    conf = calibration.predict(calibration.features(float(clusters.mass()[cluster]), passes), coef)
    tied = np.unique(clusters.of_code[top])  # behaviours the ranker cannot tell apart: the choice among them is a coin flip
    share = _share(clusters.samples, cluster, tied)
    return Ranking(method, scores, clusters, chosen, float(conf) * share, passes, share, counted)


def _share(samples: np.ndarray, cluster: int, tied: np.ndarray) -> float:
    """The chosen cluster's share of the samples of all clusters tied at the top (1 without a tie)."""
    total = float(samples[tied].sum())
    return float(samples[cluster]) / total if total > 0 else 1.0 / len(tied)
