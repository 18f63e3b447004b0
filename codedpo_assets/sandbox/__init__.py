"""Sandboxed execution of generated code: pass matrices and CPU-time measurements.

``run_pass_matrix(codes, tests)`` runs every candidate program against every test statement in
warm, isolated zygote processes (one per core) and returns pass/status/CPU-time matrices.
Verdicts for ``assert CALL == LITERAL``-style tests are computed in this process from plain data;
see :mod:`codedpo_assets.sandbox.verdicts` and :mod:`codedpo_assets.sandbox.zygote`.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codedpo_assets.sandbox.pool import Pool, SandboxError, shared_pool
from codedpo_assets.sandbox.verdicts import Check, fingerprint_outcome, fingerprint_value, judge, judge_parts, parse_test

STATUSES = ("pass", "fail", "error", "timeout", "crash")
DEFAULT_TIME_LIMIT_S = 2.0
DEFAULT_MEMORY_MB = 1024
WALL_FACTOR = 3.0  # wall-clock backstop per test = WALL_FACTOR × its CPU limit + 0.5 s
MAX_CPU_NS = 10**15  # ~11 days: any larger reported CPU time is forged

__all__ = [
    "STATUSES",
    "Calibration",
    "PassMatrix",
    "SandboxError",
    "calibrated_limits",
    "isolation_level",
    "run_pass_matrices",
    "run_pass_matrix",
]


@dataclass(frozen=True)
class Calibration:
    """Per-test CPU limits learned from the prompt's own candidates, so a looping candidate costs a
    few short probes instead of tests × limit (EvalPlus calibrates from a reference solution; we
    have none, so the other candidates play its part).

    1. Probe: every cell runs with ``probe_s``; a candidate stops after ``max_consecutive_timeouts``
       timeouts in a row if at least ``stop_share`` of its tests so far timed out (its other tests
       wait for step 2; one that loops on a few inputs only keeps going).
    2. Calibrate: test j's limit is ``factor`` × the most CPU any candidate needed to finish it in
       the probe, within [``probe_s``, the full limit]; the full limit when fewer than
       ``min_finishers`` candidates finished it (one fast wrong answer says little about what a
       right one needs). Cells that timed out below that limit, and the waiting ones, run again
       with it, the same stop rule applying.
    3. Cells still waiting are recorded as timeouts that were not run, with the reason.
    """

    probe_s: float = 0.01
    factor: float = 10.0
    max_consecutive_timeouts: int = 5
    stop_share: float = 0.5
    min_finishers: int = 3


@dataclass
class PassMatrix:
    """Cells are [code, test]. ``verified[t]``: test t was judged outside the candidate's process.
    ``limit_ns``: the CPU limit a cell ran under (0: not run: the program did not load, or the
    cell was inferred from the candidate's timeouts). ``fingerprint``: what the code did on the
    test's input (``=``/``#`` its returned value, canonical or hashed; ``!`` its outcome when there
    is no value: ``!pass``, ``!error:KeyError``, ``!timeout``...), the behaviour rankers cluster by.

    Every CPU figure except ``reported_cpu_ns`` is read by the zygote from the run's cgroup counter
    (threads and child processes included), never taken from the candidate's process: the zygote
    reads it whenever the child stops to wait (after loading, after each batch of tests).
    ``cpu_time_ns``: a cell's share of its batch's CPU, exact when the test ran alone (timing runs);
    ``cpu_bound_ns``: its whole batch's CPU, an upper bound on the test's own (calibrated limits use
    it, so a candidate can raise a limit only by spending the CPU, and lower none);
    ``run_cpu_ns``: per code, the whole run (from the fork until every process was gone);
    ``timed_cpu_ns``: per code, in timing runs, from just before the program loads to 5 ms after its
    last test (loading, every test, threads and children; not the fork or exit), what efficiency
    timing compares; ``reported_cpu_ns``: what the candidate's own process said a test took (a
    diagnostic: it decides nothing)."""

    passed: np.ndarray
    status: np.ndarray
    cpu_time_ns: np.ndarray
    detail: np.ndarray
    verified: np.ndarray
    limit_ns: np.ndarray
    run_cpu_ns: np.ndarray
    load_errors: list[str] = field(default_factory=list)  # per code: why it did not load ('' if it did)
    outputs: list[str] = field(default_factory=list)  # per code: captured stdout+stderr (capped)
    isolation: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)  # calibration figures: limits, reruns, cells not run
    fingerprint: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=object))
    # per test: what the code is run on (value checks: the call; else the statement)
    inputs: list[str] = field(default_factory=list)
    cpu_bound_ns: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    timed_cpu_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    reported_cpu_ns: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))


def isolation_level(pool: Pool | None = None) -> dict[str, Any]:
    """What isolation the zygotes achieved on this machine (network, filesystem, uid drop)."""
    return dict((pool or shared_pool()).isolation)


def _syntax_error(code: str, setup: str) -> str:
    try:
        ast.parse(setup + "\n" + code)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


Plan = list[tuple[int, float]]  # (test index, CPU limit in seconds), in the order to run


def _run_code(pool: Pool, code: str, checks: list[Check], plan: Plan, setup: str, time_limit_s: float, memory_mb: int, stop: tuple[int, float],
              timing: bool, batch_cpu_ns: int) -> dict:  # fmt: skip
    request = {
        "code": code,
        "setup": setup,
        "tests": [{"kind": c.kind, "src": c.wire} for c in checks],
        "plan": plan,
        "time_limit": time_limit_s,
        "memory_mb": memory_mb,
        "wall_factor": WALL_FACTOR,
        "max_timeouts": stop[0],
        "stop_share": stop[1],
        "timing": timing,
        "batch_cpu_ns": batch_cpu_ns,
    }
    # generous backstop: every test may hit its wall deadline twice (buffered run, then the rerun)
    timeout = 2 * sum(WALL_FACTOR * limit + 1.5 for _, limit in plan) + 2 * (WALL_FACTOR * time_limit_s + 1.5) + 30
    return pool.call(request, timeout)


def run_pass_matrix(
    codes: Sequence[str],
    tests: Sequence[str],
    *,
    setup: str = "",
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    pool: Pool | None = None,
    calibration: Calibration | None = Calibration(),
    timing: bool = False,
) -> PassMatrix:
    """Run every code against every test in the sandbox. Thread-safe: calls share the warm zygotes.

    ``time_limit_s`` is every cell's ceiling; ``calibration=None`` gives every cell exactly that
    (so does a matrix of fewer codes than ``min_finishers``: no limit could be learned from them).
    ``timing``: every test reported on its own (exact per-test CPU) and ``timed_cpu_ns`` measured,
    for efficiency timing."""
    if time_limit_s <= 0 or memory_mb < 64:
        raise ValueError(f"time_limit_s must be > 0 and memory_mb >= 64, got {time_limit_s}, {memory_mb}")
    n, m = len(codes), len(tests)
    checks = [parse_test(t) for t in tests]
    shape = (n, m)
    matrix = PassMatrix(np.zeros(shape, dtype=bool), np.full(shape, "error", dtype=object), np.zeros(shape, dtype=np.int64),
                        np.full(shape, "", dtype=object), np.array([c.verified for c in checks], dtype=bool),
                        np.zeros(shape, dtype=np.int64), np.zeros(n, dtype=np.int64), [""] * n, [""] * n,
                        fingerprint=np.full(shape, "!error", dtype=object), inputs=[c.src for c in checks],
                        cpu_bound_ns=np.zeros(shape, dtype=np.int64), reported_cpu_ns=np.zeros(shape, dtype=np.int64),
                        timed_cpu_ns=np.zeros(n, dtype=np.int64))  # fmt: skip
    if n == 0 or m == 0:
        return matrix
    pool = pool or shared_pool()
    matrix.isolation = dict(pool.isolation)
    runnable = []
    for i, code in enumerate(codes):
        error = _syntax_error(code, setup)
        if error:  # never reaches the sandbox
            matrix.status[i, :], matrix.detail[i, :], matrix.load_errors[i] = "error", error, error
            matrix.fingerprint[i, :] = fingerprint_outcome("error", error)
        else:
            runnable.append(i)
    run = functools.partial(
        _run_pass, matrix, pool, codes, checks, setup=setup, time_limit_s=time_limit_s, memory_mb=memory_mb, timing=timing
    )
    if calibration is None or len(runnable) < calibration.min_finishers:
        run({i: [(j, time_limit_s) for j in range(m)] for i in runnable}, stop=(0, 0.0), batch_cpu_ns=0)
        _unreported(matrix, "error", "no result: the run ended before this test")  # only a forged early end does this
        matrix.schedule = {"calibrated": False, "tests_at_full_limit": m, "cells_rerun": 0, "cells_not_run": 0}
        return matrix
    probe = min(time_limit_s, calibration.probe_s)
    k, stop = calibration.max_consecutive_timeouts, (calibration.max_consecutive_timeouts, calibration.stop_share)
    # batches short enough that a batch of fast tests stays below what moves a limit off the probe
    run({i: [(j, probe) for j in range(m)] for i in runnable}, stop=stop, batch_cpu_ns=int(probe / calibration.factor / 2 * 1e9))
    limits = calibrated_limits(matrix, probe, time_limit_s, calibration.factor, calibration.min_finishers)
    waiting = matrix.status == "skipped"
    again = waiting | ((matrix.status == "timeout") & (limits[None, :] > probe))
    plans = {}
    for i in runnable:
        order = np.flatnonzero(again[i])
        np.random.default_rng(i).shuffle(order)  # a candidate's slow inputs often come in runs of tests
        if order.size:
            plans[i] = [(int(j), float(limits[j])) for j in order]
    run(plans, stop=stop, batch_cpu_ns=0)
    not_run = _unreported(matrix, "timeout", f"not run: the candidate timed out on {k} tests in a row and on most it ran")
    matrix.schedule = {"calibrated": True, "probe_s": probe, "factor": calibration.factor, "max_consecutive_timeouts": k, "stop_share": calibration.stop_share,
                       "tests_at_full_limit": int((limits >= time_limit_s).sum()), "cells_rerun": int(again.sum()), "cells_not_run": not_run}  # fmt: skip
    return matrix


def _unreported(matrix: PassMatrix, status: str, detail: str) -> int:
    """Give the cells a run left without a result (``skipped``) their final status; how many."""
    cells = matrix.status == "skipped"
    matrix.status[cells], matrix.detail[cells], matrix.fingerprint[cells] = status, detail, "!" + status
    return int(cells.sum())


def run_pass_matrices(
    problems: Sequence[tuple[Sequence[str], Sequence[str], str]], *, pool: Pool | None = None, **options: Any
) -> list[PassMatrix]:
    """``run_pass_matrix`` for several prompts (codes, tests, setup) at once, results in order: a
    prompt's second pass is often one slow candidate, and the next prompt's cells fill the idle zygotes."""
    pool = pool or shared_pool()
    with ThreadPoolExecutor(max_workers=pool.size) as executor:
        return list(executor.map(lambda p: run_pass_matrix(p[0], p[1], setup=p[2], pool=pool, **options), problems))


def calibrated_limits(matrix: PassMatrix, probe_s: float, time_limit_s: float, factor: float, min_finishers: int) -> np.ndarray:
    """Per test: ``factor`` × the most CPU a candidate needed to finish it (pass, fail or error),
    within [probe_s, time_limit_s]; the full limit for a test fewer than ``min_finishers`` finished.
    "Needed" is the zygote's bound (``cpu_bound_ns``): never below what the test really took."""
    finished = np.isin(matrix.status, ("pass", "fail", "error")) & (matrix.limit_ns > 0)
    slowest = np.where(finished, matrix.cpu_bound_ns, 0).max(axis=0)
    return np.where(finished.sum(axis=0) >= min_finishers, np.clip(factor * slowest / 1e9, probe_s, time_limit_s), time_limit_s)


def _run_pass(matrix: PassMatrix, pool: Pool, codes: Sequence[str], checks: list[Check], plans: dict[int, Plan], *,
              setup: str, time_limit_s: float, memory_mb: int, stop: tuple[int, float], timing: bool, batch_cpu_ns: int) -> None:  # fmt: skip
    """Run each code's plan on the zygotes and write the cells it covers."""
    with ThreadPoolExecutor(max_workers=pool.size) as executor:
        futures = {i: executor.submit(_run_code, pool, codes[i], checks, plan, setup, time_limit_s, memory_mb, stop, timing, batch_cpu_ns)
                   for i, plan in plans.items()}  # fmt: skip
        for i, future in futures.items():
            cols = [j for j, _ in plans[i]]
            try:
                reply = future.result()
            except SandboxError as exc:  # the zygote died under this candidate: its row, not the matrix
                matrix.status[i, cols], matrix.detail[i, cols], matrix.load_errors[i] = "crash", str(exc)[:300], str(exc)[:300]
                matrix.passed[i, cols], matrix.fingerprint[i, cols] = False, "!crash"
                continue
            try:
                _fill_row(matrix, i, reply, plans[i], checks)
            except Exception as exc:  # noqa: BLE001 -- any malformed (forged) reply: this row crashes, not the matrix
                matrix.status[i, cols], matrix.passed[i, cols], matrix.detail[i, cols] = (
                    "crash",
                    False,
                    f"malformed report: {type(exc).__name__}",
                )
                matrix.fingerprint[i, cols] = "!crash"


def _fill_row(matrix: PassMatrix, i: int, reply: dict, plan: Plan, checks: list[Check]) -> None:
    load = reply.get("load") or {}
    loaded = load.get("load") in (None, "ok")
    if not loaded:
        matrix.load_errors[i] = load.get("detail", load.get("load", ""))
    matrix.outputs[i] = matrix.outputs[i] or reply.get("output", "")  # the first run's: loading prints there
    matrix.run_cpu_ns[i] += _ns(reply.get("run_cpu_ns"))
    matrix.timed_cpu_ns[i] += _ns(reply.get("timed_cpu_ns"))
    results = reply["results"]
    if len(results) != len(plan):
        raise ValueError("one result per planned test expected")
    for reported, (j, limit) in zip(results, plan):
        check = checks[j]
        res = reported if isinstance(reported, dict) else {"s": "error", "e": "no result reported"}
        state, reason = res.get("s", "error"), str(res.get("e", ""))
        fingerprint = ""
        if state == "value" and check.kind == "value":  # the verdict is ours: compare plain data with the expected literal
            ok, reason = judge(check, res.get("v"))
            state = "pass" if ok else "fail"
            fingerprint = fingerprint_value(res.get("v"))
        elif state == "parts" and check.kind == "parts":  # ours too: the parent evaluates the assertion on the parts
            state, reason = judge_parts(check, res.get("v"))
            fingerprint = fingerprint_value(["t", res.get("v")]) if state in ("pass", "fail") else ""
        elif state in ("value", "parts"):
            state, reason = "fail", f"{state} reported for a {check.kind} test"  # forged or broken report
        elif state == "pass" and check.verified:
            state, reason = "fail", "pass claimed without a value"  # forged or broken report
        if state not in STATUSES and state != "skipped":
            state, reason = "error", f"unknown status {state!r}"
        matrix.fingerprint[i, j] = fingerprint or fingerprint_outcome(state, reason)
        matrix.status[i, j] = state
        matrix.detail[i, j] = reason
        matrix.passed[i, j] = state == "pass"
        matrix.limit_ns[i, j] = int(limit * 1e9) if loaded and state != "skipped" else 0
        matrix.cpu_time_ns[i, j], matrix.cpu_bound_ns[i, j] = _ns(res.get("cpu")), _ns(res.get("bound"))  # the zygote's
        matrix.reported_cpu_ns[i, j] = _ns(res.get("rt"))  # the candidate's own claim: clamped, shown, never used


def _ns(value: Any) -> int:
    return min(max(value, 0), MAX_CPU_NS) if isinstance(value, int) and not isinstance(value, bool) else 0


from codedpo_assets.sandbox.timing import Timing, compare, time_candidates  # noqa: E402  (uses run_pass_matrix)

__all__ += ["Timing", "compare", "time_candidates"]
