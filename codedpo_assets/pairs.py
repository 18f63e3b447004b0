"""Trusted tests and preference-pair rules (pure): correctness pairs and efficiency pairs.

Every prompt either yields a pair or a recorded reason why not (no candidates, no tests, scores
that do not separate, identical code, timings within noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codedpo_assets.sandbox.timing import Timing, compare
from codedpo_assets.scoring import top_set


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


def correctness_pair(scores: np.ndarray, norm_hashes: list[str], *, min_margin: float = 1e-9) -> Pair | str:
    """Top- vs bottom-scored code, or the reason there is no pair."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size < 2:
        return "fewer_than_two_candidates"
    if not np.isfinite(scores).all():
        return "non_finite_scores"
    order = np.argsort(-scores, kind="stable")
    best = int(order[0])
    for worst in order[:0:-1]:  # from the bottom up, never the top code itself
        worst = int(worst)
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
