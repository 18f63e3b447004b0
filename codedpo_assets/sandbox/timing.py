"""Efficiency timing protocol: CPU time of candidates over a set of tests, noise-aware.

Hardware instruction counters are unavailable on these VMs, so we time CPU (not wall) time, as
the zygote reads it from the run's cgroup counter while the child waits: from just before the
program loads to 5 ms after its last test (loading, every test, all threads and child processes;
the fork and exit, the same for every candidate, left out so they do not flatten the ratios).
Nothing the candidate's process says or patches (its clocks, the harness's globals) changes it.
The harness's own work per test (reporting, waiting for the zygote: ~10-30 µs) is inside the
figure, the same for every candidate: ratios between fast programs read smaller than their
algorithms' (a 5x faster HumanEval solution measured ~2.4x), so the 10 % rule is conservative.
one warm-up round, then ``repetitions`` rounds; every round runs each candidate once in a fresh
child, in a freshly shuffled order (interleaving spreads machine drift over all candidates).
The estimate is the median; the dispersion is the median absolute deviation (MAD). All runs go
through one dedicated zygote, so every candidate is measured under the same conditions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from codedpo_assets.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIME_LIMIT_S, run_pass_matrix
from codedpo_assets.sandbox.pool import Pool

_timing_pool: Pool | None = None


def timing_pool() -> Pool:
    """One dedicated zygote for all timing: candidates spread over several zygotes (cores) pick up
    per-core speed differences (identical programs measured 2.0 vs 2.4 ms, samples not overlapping)."""
    global _timing_pool  # noqa: PLW0603 -- one lazily started pool per process
    if _timing_pool is None:
        _timing_pool = Pool(1)
    return _timing_pool


@dataclass(frozen=True)
class Timing:
    median_ns: float
    mad_ns: float  # median absolute deviation of the samples
    samples_ns: tuple[int, ...]
    all_passed: bool  # every repetition passed every test (timings of failing runs mean little)

    @property
    def relative_noise(self) -> float:
        return self.mad_ns / self.median_ns if self.median_ns else float("inf")


def time_candidates(
    codes: Sequence[str],
    tests: Sequence[str],
    *,
    setup: str = "",
    repetitions: int = 5,
    warmup: int = 1,
    seed: int = 0,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    pool: Pool | None = None,
) -> list[Timing]:
    """Per candidate: CPU time of loading it and running ``tests`` (median of ``repetitions``
    interleaved runs).

    Runs on one dedicated zygote (``timing_pool``) unless ``pool`` is given."""
    if repetitions < 5:
        raise ValueError(f"repetitions must be >= 5 for a usable dispersion estimate, got {repetitions}")
    rng = random.Random(seed)
    samples: list[list[int]] = [[] for _ in codes]
    passed = np.ones(len(codes), dtype=bool)
    for round_ in range(warmup + repetitions):
        order = list(range(len(codes)))
        rng.shuffle(order)
        matrix = run_pass_matrix([codes[i] for i in order], tests, setup=setup, time_limit_s=time_limit_s, memory_mb=memory_mb,
                                 pool=pool or timing_pool(), calibration=None, timing=True)  # fmt: skip
        if round_ < warmup:
            continue
        for row, i in enumerate(order):
            samples[i].append(int(matrix.timed_cpu_ns[row]))
            passed[i] &= bool(matrix.passed[row].all())
    timings = []
    for i, s in enumerate(samples):
        arr = np.asarray(s, dtype=float)
        med = float(np.median(arr)) if arr.size else 0.0
        timings.append(Timing(med, float(np.median(np.abs(arr - med))) if arr.size else 0.0, tuple(s), bool(passed[i])))
    return timings


def compare(a: Timing, b: Timing, *, min_ratio: float = 1.1) -> int:
    """-1 if ``a`` is faster, 1 if slower, 0 for a tie.

    A difference counts only when the medians differ by ``min_ratio`` (the paper's 10%) *and*
    the samples do not overlap: CPU time on these VMs can be bimodal (the same program measured
    2.3 ms and 3.6 ms in one run), so a MAD-only rule would call noise a speedup.
    """
    fast, slow = (a, b) if a.median_ns <= b.median_ns else (b, a)
    if slow.median_ns < min_ratio * fast.median_ns or max(fast.samples_ns) >= min(slow.samples_ns):
        return 0
    return -1 if fast is a else 1
