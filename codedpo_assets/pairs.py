"""Trusted tests and preference-pair rules (pure), on a :class:`~codedpo_assets.scoring.Ranking`.

Every prompt either yields a pair or a recorded reason why not (no candidates, no tests, low
confidence, no code failing a trusted test, scores that do not separate, identical code, timings
within noise).

- Correctness: the chosen code is the ranking's choice (the most-written code of the top
  behaviour cluster); the rejected one comes from the lowest-scored cluster that fails a trusted
  test (a test the chosen code passes). A code that behaves like the chosen one on every test
  differs only in the ranker's prior, which is no evidence that it is wrong.
- Efficiency: fast vs slow only inside the top behaviour cluster (same output on every input): a
  faster code that answers differently may be faster *because* it is wrong.
- Confidence: the ranking's calibrated probability that the chosen code is correct
  (:mod:`codedpo_assets.calibration`). On real samples about half of the top codes are wrong, and
  a pair on a wrong one teaches the model to prefer one wrong program over another;
  ``DEFAULT_MIN_CONFIDENCE`` is chosen by cross-validation over problems (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codedpo_assets import calibration
from codedpo_assets.sandbox.timing import Timing, compare
from codedpo_assets.scoring import Ranking

DEFAULT_MIN_CONFIDENCE = calibration.THRESHOLDS[calibration.DEFAULT_FIT]


@dataclass(frozen=True)
class Pair:
    chosen: int  # code index
    rejected: int
    margin: float  # correctness: score gap; efficiency: slow/fast median CPU-time ratio
    chosen_cluster: int = -1  # behaviour clusters of the two codes
    rejected_cluster: int = -1


def trusted_tests(ranking: Ranking) -> np.ndarray:
    """Per test of the matrix: the chosen code (its whole behaviour cluster) passes it, and the
    ranking counted it (verified: a verdict the candidate's process gave is never trusted)."""
    mask = np.zeros(len(ranking.counted), dtype=bool)
    if ranking.chosen >= 0:
        mask[ranking.counted] = ranking.clusters.passed[ranking.top_cluster]
    return mask


def trusted_codes(ranking: Ranking) -> np.ndarray:
    """Codes of the top behaviour cluster: the only codes timed for efficiency pairs."""
    return ranking.clusters.of_code == ranking.top_cluster


def correctness_pair(
    ranking: Ranking,
    norm_hashes: list[str],
    code_weights: np.ndarray | None = None,
    *,
    min_margin: float = 1e-9,
    trusted: np.ndarray | None = None,
) -> Pair | str:
    """The chosen code vs the most-written code of the lowest-scored cluster failing a trusted
    test, or the reason there is no pair. ``trusted`` (per test of the matrix): the tests that
    judge, when not the chosen cluster's (the seed's, :mod:`codedpo_assets.reference`)."""
    scores, clusters = np.asarray(ranking.scores, dtype=np.float64), ranking.clusters
    if scores.size < 2:
        return "fewer_than_two_candidates"
    if not np.isfinite(scores).all():
        return "non_finite_scores"
    # default: what the chosen cluster passes (two or more codes: there is a chosen one)
    trusted = clusters.passed[ranking.top_cluster] if trusted is None else np.asarray(trusted, dtype=bool)[ranking.counted]
    if not trusted.any():
        return "no_trusted_tests"
    fails = ~clusters.passed[:, trusted].all(axis=1)
    if not fails.any():
        return "no_code_fails_a_trusted_test"
    weights = np.ones(scores.size) if code_weights is None else np.asarray(code_weights, dtype=np.float64)
    best, worth = ranking.chosen, ranking.cluster_scores()
    for cluster in sorted(np.flatnonzero(fails), key=lambda c: (worth[c], -c)):
        members = clusters.members(int(cluster))
        for worst in sorted(members, key=lambda i: (-weights[i], i)):
            if scores[best] - scores[worst] <= min_margin:
                return "scores_do_not_separate"
            if norm_hashes[worst] != norm_hashes[best]:
                return Pair(best, int(worst), float(scores[best] - scores[worst]), ranking.top_cluster, int(cluster))
    return "identical_code"


def efficiency_pair(
    timings: dict[int, Timing], norm_hashes: list[str], *, min_ratio: float = 1.1, cluster: int = -1
) -> Pair | str:
    """Fastest vs slowest timed code (the top cluster's) when the gap beats the noise and ``min_ratio``."""
    usable = {i: t for i, t in timings.items() if t.all_passed and t.median_ns > 0}
    if len(usable) < 2:
        return "fewer_than_two_correct_timed"
    fast = min(usable, key=lambda i: usable[i].median_ns)
    slow = max(usable, key=lambda i: usable[i].median_ns)
    if norm_hashes[fast] == norm_hashes[slow]:
        return "identical_code"
    if compare(usable[fast], usable[slow], min_ratio=min_ratio) != -1:
        return "within_noise"
    return Pair(fast, slow, usable[slow].median_ns / usable[fast].median_ns, cluster, cluster)
