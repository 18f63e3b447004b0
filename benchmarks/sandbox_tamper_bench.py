"""Tampering candidates against the sandbox: clock patchers timed, result-line forgers judged, and
how many real generated tests are judged outside the candidate's process.

Run: .venv/bin/python benchmarks/sandbox_tamper_bench.py   (figures to stdout; docs/benchmarks.md
records them with the date). The adversarial corpus is the one tests/test_sandbox_tamper.py runs.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]

from test_sandbox_tamper import FAST, FORGERS, PATCHERS, SLOW, TESTS, TIMED

from codedpo_assets.sandbox import Calibration, run_pass_matrix, time_candidates
from codedpo_assets.sandbox.pool import Pool
from codedpo_assets.sandbox.verdicts import parse_test


def clocks() -> None:
    """Each patcher + the slow program, timed beside the honest slow and fast ones (5 rounds each)."""
    print("| tampering slow program | timed (ms, median) | vs honest slow (same run) | all tests passed |")
    print("|---|---|---|---|")
    worst = float("inf")
    for name in sorted(PATCHERS):
        honest, tampered, fast = time_candidates([SLOW, PATCHERS[name] + SLOW, FAST], TIMED, seed=11)
        ratio = tampered.median_ns / honest.median_ns
        worst = min(worst, ratio)
        print(
            f"| {name} | {tampered.median_ns / 1e6:.2f} | {ratio:.2f}x (honest slow {honest.median_ns / 1e6:.2f}, "
            f"fast {fast.median_ns / 1e6:.2f}) | {tampered.all_passed} |"
        )
    print(f"clock patchers: the least a tampering slow program was timed = {worst:.2f}x the honest slow one (target >= 0.5x)")


def forgers(pool: Pool) -> None:
    verified = [j for j, t in enumerate(TESTS) if parse_test(t).verified]
    passed = unverified = 0
    for name in sorted(FORGERS):
        for calibration in (None, Calibration()):
            m = run_pass_matrix([FORGERS[name]], TESTS, pool=pool, calibration=calibration)
            passed += int(m.passed[0, verified].sum())
            unverified += int(m.passed[0].sum() - m.passed[0, verified].sum())
    runs = 2 * len(FORGERS)
    print(
        f"result-line forgers: {len(FORGERS)} wrong programs x {len(TESTS)} tests x 2 schedules: {passed} passes of "
        f"{runs * len(verified)} on the {len(verified)} verified tests (target 0); {unverified} of {runs * (len(TESTS) - len(verified))} "
        f"on unverified statements (counted for nothing)"
    )


def real_tests() -> None:
    import real_samples

    if not real_samples.available():
        print("real samples not found: skipped the share of judged tests")
        return
    kinds: dict[str, int] = {}
    for problem in real_samples.load():
        for test in problem.tests:
            kind = parse_test(test).kind
            kinds[kind] = kinds.get(kind, 0) + 1
    total = sum(kinds.values())
    print(
        f"real generated tests ({total} distinct): value checks {kinds.get('value', 0)}, split assertions {kinds.get('parts', 0)}, "
        f"unverified statements {kinds.get('stmt', 0)} ({100 * kinds.get('stmt', 0) / total:.1f} %)"
    )


if __name__ == "__main__":
    pool = Pool(1)
    try:
        real_tests()
        forgers(pool)
    finally:
        pool.close()
    clocks()
