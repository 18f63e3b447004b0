"""Trusted tests and preference-pair rules (pure): correctness pairs and efficiency pairs.

Every prompt either yields a pair or a recorded reason why not (no candidates, no tests, low
confidence, no code failing a trusted test, scores that do not separate, identical code, timings
within noise).

Confidence: the share of the prompt's code samples that behave like its top code (same
passed-test set). On real model samples, prompts where few samples agree with the top code mostly
have a wrong top code, so pairs from them teach the model to prefer one wrong program over
another; ``DEFAULT_MIN_CONFIDENCE`` is set from the precision/yield curve of
``benchmarks/ranking_real_bench.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codedpo_assets.sandbox.timing import Timing, compare
from codedpo_assets.scoring import consensus_share, top_set

DEFAULT_MIN_CONFIDENCE = 0.2


@dataclass(frozen=True)
class Pair:
    chosen: int  # code index
    rejected: int
    margin: float  # correctness: score gap; efficiency: slow/fast median CPU-time ratio


def trusted_tests(passed: np.ndarray, code_scores: np.ndarray) -> np.ndarray:
    """Tests passed by every top-scored code (all codes tied at the top count)."""
    passed = np.asarray(passed, dtype=bool)
    if passed.shape[0] == 0 or passed.shape[1] == 0:
        return np.zeros(passed.shape[1], dtype=bool)
    return passed[top_set(code_scores)].all(axis=0)


def trusted_codes(passed: np.ndarray, code_scores: np.ndarray) -> np.ndarray:
    """Codes that behave like a top-scored code on every test (its consensus set): the only codes
    timed for efficiency pairs (a code also passing tests the top code fails passes wrong tests)."""
    passed = np.asarray(passed, dtype=bool)
    if passed.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    top_rows = passed[top_set(code_scores)]
    return (passed[:, None, :] == top_rows[None, :, :]).all(axis=2).any(axis=1)


def confidence(passed: np.ndarray, code_scores: np.ndarray, code_weights: np.ndarray | None = None) -> float:
    """Share of code samples behaving like the top-scored code (the best such share among ties)."""
    passed = np.asarray(passed, dtype=bool)
    if passed.shape[0] == 0:
        return 0.0
    return float(consensus_share(passed, code_weights)[top_set(code_scores)].max())


def correctness_pair(scores: np.ndarray, norm_hashes: list[str], passed: np.ndarray, *, min_margin: float = 1e-9) -> Pair | str:
    """Top-scored code vs the lowest-scored code that fails a trusted test, or the reason there is
    no pair. The rejected code must fail a test the chosen one passes: two codes that behave alike
    on every test differ only in the ranker's prior, which is no evidence that one is wrong."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size < 2:
        return "fewer_than_two_candidates"
    if not np.isfinite(scores).all():
        return "non_finite_scores"
    fails_trusted = ~np.asarray(passed, dtype=bool)[:, trusted_tests(passed, scores)].all(axis=1)
    order = np.argsort(-scores, kind="stable")
    best = int(order[0])
    if not fails_trusted.any():
        return "no_code_fails_a_trusted_test"
    for worst in order[:0:-1]:  # from the bottom up, never the top code itself
        worst = int(worst)
        if not fails_trusted[worst]:
            continue
        if scores[best] - scores[worst] <= min_margin:
            return "scores_do_not_separate"
        if norm_hashes[worst] != norm_hashes[best]:
            return Pair(best, worst, float(scores[best] - scores[worst]))
    return "identical_code"


def efficiency_pair(timings: dict[int, Timing], norm_hashes: list[str], *, min_ratio: float = 1.1) -> Pair | str:
    """Fastest vs slowest correct code when the gap beats the noise and ``min_ratio``."""
    usable = {i: t for i, t in timings.items() if t.all_passed and t.median_ns > 0}
    if len(usable) < 2:
        return "fewer_than_two_correct_timed"
    fast = min(usable, key=lambda i: usable[i].median_ns)
    slow = max(usable, key=lambda i: usable[i].median_ns)
    if norm_hashes[fast] == norm_hashes[slow]:
        return "identical_code"
    if compare(usable[fast], usable[slow], min_ratio=min_ratio) != -1:
        return "within_noise"
    return Pair(fast, slow, usable[slow].median_ns / usable[fast].median_ns)
