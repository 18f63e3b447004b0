"""Sandbox on real model output: the pass matrix of real CodeGen-16B samples for 82 HumanEval problems.

Run: .venv/bin/python benchmarks/real_sandbox_bench.py [--compute-reference] [--limit N]

Side by side in one run, at the default limits (2 s CPU per test, 1 GiB), all prompts through
``run_pass_matrices`` as the pass_matrix asset runs a partition:
1. the real matrix as is (the default calibrated limits),
2. the same matrix without the candidates that timed out in (1),
3. the trivial-program workload (600 candidates × 15 `assert add(..) == ..`),
and the agreement of (1) with a run at the full fixed limit (``calibration=None``: every cell gets
2 s). That reference costs ~40 min on 2 cores (a looping candidate costs tests × 2 s there), so it
is computed once with ``--compute-reference`` and cached in data/bench/.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_samples

from codedpo_assets.sandbox import DEFAULT_TIME_LIMIT_S, run_pass_matrices, run_pass_matrix
from codedpo_assets.sandbox.pool import Pool

REFERENCE = Path(__file__).resolve().parent.parent / "data" / "bench" / f"real_reference_{DEFAULT_TIME_LIMIT_S:g}s.pkl"


def run_all(problems, pool: Pool, **kwargs) -> tuple[dict[str, np.ndarray], float, int]:
    """Status matrix per problem, wall seconds, cells: all prompts in one call, as the asset does."""
    t = time.perf_counter()
    matrices = run_pass_matrices([(p.codes, p.tests, "") for p in problems], pool=pool, **kwargs)
    wall = time.perf_counter() - t
    return {p.task_id: m.status for p, m in zip(problems, matrices)}, wall, sum(m.status.size for m in matrices)


def trivial(pool: Pool) -> float:
    codes = [f"def add(a, b):\n    return a + b + {i % 3}\n" for i in range(600)]
    tests = [f"assert add({i}, {i + 1}) == {2 * i + 1}" for i in range(15)]
    run_pass_matrix(codes[:8], tests, pool=pool)  # warm
    t = time.perf_counter()
    run_pass_matrix(codes, tests, pool=pool)
    return len(codes) * len(tests) / (time.perf_counter() - t)


def agreement(ours: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    same = total = same_pass = 0
    kinds: Counter[tuple[str, str]] = Counter()
    for task, status in ours.items():
        ref = reference[task]
        if ref.shape != status.shape:
            raise SystemExit(f"{task}: reference shape {ref.shape} != {status.shape}: recompute it (--compute-reference)")
        same += int((ref == status).sum())
        same_pass += int(((ref == "pass") == (status == "pass")).sum())
        total += status.size
        kinds.update(zip(ref[ref != status].tolist(), status[ref != status].tolist()))
    print(
        f"agreement with the full fixed limit: statuses {same}/{total} = {100 * same / total:.3f} %, "
        f"pass/no-pass {same_pass}/{total} = {100 * same_pass / total:.3f} %"
    )
    print(f"  disagreements (reference -> calibrated): {dict(kinds.most_common())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compute-reference", action="store_true", help="run the full fixed-limit matrix (slow) and cache it")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    args = parser.parse_args()
    if not real_samples.available():
        raise SystemExit(f"real samples not found in {real_samples.DATA} (set CODEDPO_REAL_SAMPLES)")
    problems = real_samples.load(args.limit)
    pool = Pool()
    print(f"isolation: {pool.isolation}")
    print(
        f"{len(problems)} problems, {sum(len(p.codes) for p in problems)} programs, {sum(len(p.tests) for p in problems)} tests"
    )
    if args.compute_reference:
        reference, wall, cells = run_all(problems, pool, calibration=None)
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        REFERENCE.write_bytes(pickle.dumps(reference))
        print(f"reference (full fixed limit): {cells} cells in {wall:.1f} s = {cells / wall:.0f} cells/s -> {REFERENCE.name}")
    ours, wall, cells = run_all(problems, pool)
    print(f"1. real matrix, calibrated limits (default): {cells} cells in {wall:.1f} s = {cells / wall:.0f} cells/s")
    looping = {t: {i for i in range(s.shape[0]) if (s[i] == "timeout").any()} for t, s in ours.items()}
    clean = [real_samples.Problem(p.task_id, p.entry_point, [c for i, c in enumerate(p.codes) if i not in looping[p.task_id]], p.tests, p.official)
             for p in problems]  # fmt: skip
    _, wall_clean, cells_clean = run_all(clean, pool)
    print(
        f"2. without the {sum(map(len, looping.values()))} candidates that timed out: {cells_clean} cells in {wall_clean:.1f} s = "
        f"{cells_clean / wall_clean:.0f} cells/s -> the real matrix runs at {100 * (cells / wall) / (cells_clean / wall_clean):.0f} % of that"
    )
    print(f"3. trivial programs: {trivial(pool):.0f} cells/s")
    if REFERENCE.exists():
        agreement(ours, pickle.loads(REFERENCE.read_bytes()))
    else:
        print(f"no reference at {REFERENCE}: run once with --compute-reference for the agreement figure")
    pool.close()


if __name__ == "__main__":
    main()
