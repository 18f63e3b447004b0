"""Confidence that a prompt's chosen code is correct: a two-feature logistic model, calibrated.

A ranker's top code is right about half the time on real model samples; a pair built on a wrong
top code teaches the model to prefer one wrong program over another. The pair filter needs a
number that *means* a probability, so a threshold reads as "keep prompts whose chosen code is
right at least this often". Features of the chosen code's behaviour cluster, both free of the
sampling budget (15 or 100 samples, 10 or 300 tests give the same scale):

- ``log(mass)``: share of the prompt's code samples in the cluster (agreement among programs);
- ``log(agreement + 0.01)``: weighted share of the verified generated tests it passes (agreement
  with the model's expected values; the floor keeps "passes nothing" finite and very negative).

Chosen on real samples (``benchmarks/ranking_real_bench.py``) by 5-fold cross-validation over
problems among single features and pairs of {mass, agreement, functional-overlap mass, score
share, agreement with the other rankers}: this pair had the lowest out-of-fold error. Each ranker
picks its chosen code its own way, so each has its own coefficients: the fit on all 82 even
HumanEval problems of one model's samples (``FITS``: CodeGen-Mono-16B's real samples, and the
embedded model's own, ``benchmarks/embedded_samples.py``; ``COEFFICIENTS`` is the default fit's).
A model's confidence scale is its own (how often its majority is right), so the default is the
embedded model's. The figures reported for them (reliability table, precision and yield) are
out-of-fold. :func:`fit` refits on labelled data of your own model.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

AGREEMENT_FLOOR = 0.01
# sample source → ranker → (intercept, log mass, log agreement): fits on HumanEval's even problems (docs/benchmarks.md)
FITS: dict[str, dict[str, tuple[float, float, float]]] = {
    "codegen-mono-16b": {  # ../shared/data/real-samples: 100 solutions + 100 tests per problem
        "consensus": (1.98, 0.901, 0.545),
        "behaviour": (1.623, 0.65, 0.48),
        "self_verification": (1.085, 0.482, 0.324),
        "codet": (2.197, 1.132, 0.556),
        "pass_count": (0.847, 0.692, 0.317),
        "all_tests": (6.034, 3.621, 1.552),
        "random": (1.765, 1.007, 0.568),
    },
    "qwen2.5-coder-0.5b-instruct": {  # the embedded model's own 10 solutions + 10 tests per problem (benchmarks/embedded_samples.py)
        "consensus": (2.879, 1.141, 1.229),
        "behaviour": (2.535, 0.476, 1.183),
        "self_verification": (2.642, 0.805, 1.086),
        "codet": (2.688, 0.943, 1.133),
        "pass_count": (3.753, 1.481, 1.194),
        "all_tests": (3.043, 2.034, 1.083),
        "random": (3.366, 1.891, 1.307),
    },
}
DEFAULT_FIT = "qwen2.5-coder-0.5b-instruct"  # the embedded model: its own samples, through the product's prompts
# fit → the threshold rule's pick (keep prompts while their pairs are right more often than wrong) for the default ranker
THRESHOLDS: dict[str, float] = {"codegen-mono-16b": 0.5, "qwen2.5-coder-0.5b-instruct": 0.35}
COEFFICIENTS = FITS[DEFAULT_FIT]


def features(mass: float, agreement: float) -> np.ndarray:
    """The model's inputs for one chosen cluster."""
    if not (0 <= mass <= 1 and 0 <= agreement <= 1):
        raise ValueError(f"mass and agreement are shares in [0, 1], got {mass}, {agreement}")
    return np.array([np.log(max(mass, 1e-12)), np.log(agreement + AGREEMENT_FLOOR)])


def predict(x: np.ndarray, coefficients: Sequence[float]) -> np.ndarray | float:
    """P(chosen code correct) for feature rows ``x`` ([F] or [n, F])."""
    coef = np.asarray(coefficients, dtype=np.float64)
    z = coef[0] + np.asarray(x, dtype=np.float64) @ coef[1:]
    p = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
    return float(p) if np.ndim(p) == 0 else p


def fit(x: np.ndarray, y: np.ndarray, *, l2: float = 0.1, iterations: int = 50) -> tuple[float, ...]:
    """Logistic regression by Newton's method with a small ridge on the slopes (82 problems are
    few: the ridge keeps a lucky split from producing extreme slopes). ``y`` may be fractional
    (the expected correctness of a uniform pick among tied programs)."""
    x, y = np.atleast_2d(np.asarray(x, dtype=np.float64)), np.asarray(y, dtype=np.float64)
    if len(x) != len(y) or not len(y):
        raise ValueError(f"need one label per feature row, got {len(x)} rows and {len(y)} labels")
    design = np.column_stack([np.ones(len(x)), x])
    penalty = np.diag([0.0] + [2 * l2] * x.shape[1])
    w = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -50, 50)))
        gradient = design.T @ (y - p) - penalty @ w
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w += step
        if np.abs(step).max() < 1e-10:
            break
    return tuple(float(v) for v in w)


def reliability(
    predicted: np.ndarray, observed: np.ndarray, edges: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
) -> list[tuple[str, int, float, float]]:
    """Reliability table: per bin of predicted probability, (bin, prompts, mean predicted, observed rate)."""
    predicted, observed = np.asarray(predicted, dtype=np.float64), np.asarray(observed, dtype=np.float64)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        inside = (predicted >= lo) & ((predicted < hi) | (hi == edges[-1]))
        if inside.any():
            rows.append(
                (f"{lo:.1f}-{hi:.1f}", int(inside.sum()), float(predicted[inside].mean()), float(observed[inside].mean()))
            )
    return rows


def monotone_ceiling(x1: np.ndarray, x2: np.ndarray, good: np.ndarray, size: int) -> int:
    """The most ``good`` items any selection of exactly ``size`` items can hold when it is
    monotone in two features (an item selected ⇒ every item at least as high in both is too),
    or -1 when no such selection has that size.

    Why: any confidence that increases with both features keeps prompts by such a rule, so this
    is the best precision at that yield *any* threshold on such a confidence can reach, fitted in
    sample (optimistic). When it is below a target, no refit of the model reaches the target: the
    features are the limit. Exact, by dynamic programming over a threshold on ``x2`` that may only
    fall as ``x1`` grows (O(n² · size))."""
    x1, x2 = np.asarray(x1, dtype=np.float64), np.asarray(x2, dtype=np.float64)
    good = np.asarray(good, dtype=np.int64)
    if not (len(x1) == len(x2) == len(good)) or not 0 <= size <= len(x1):
        raise ValueError(f"need equal lengths and 0 <= size <= n, got {len(x1)}, {len(x2)}, {len(good)} and {size}")
    levels = np.append(np.unique(x2), np.inf)  # the threshold on x2; inf selects nothing
    none = np.iinfo(np.int64).min // 2
    best = np.full((len(levels), size + 1), none)
    best[:, 0] = 0  # [threshold index, items selected] → most good items so far
    rows, counts = np.arange(len(levels))[:, None], np.arange(size + 1)[None, :]
    for x1_value in np.unique(x1):  # ascending; items with equal x1 share one threshold
        items = np.flatnonzero(x1 == x1_value)
        reachable = np.maximum.accumulate(best[::-1], axis=0)[::-1]  # the threshold may only fall
        picked = x2[items][None, :] >= levels[:, None]  # [threshold, item]
        before = counts - picked.sum(axis=1)[:, None]  # items selected before this group
        gain = (picked * good[items]).sum(axis=1)[:, None]
        best = np.where(before >= 0, reachable[rows, np.maximum(before, 0)] + gain, none)
    result = int(best[:, size].max())
    return result if result >= 0 else -1
