"""Sandboxed execution of generated code: pass matrices and CPU-time measurements.

``run_pass_matrix(codes, tests)`` runs every candidate program against every test statement in
warm, isolated zygote processes (one per core) and returns pass/status/CPU-time matrices.
Verdicts for ``assert CALL == LITERAL``-style tests are computed in this process from plain data;
see :mod:`codedpo_assets.sandbox.verdicts` and :mod:`codedpo_assets.sandbox.zygote`.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codedpo_assets.sandbox.pool import Pool, SandboxError, shared_pool
from codedpo_assets.sandbox.verdicts import Check, judge, parse_test

STATUSES = ("pass", "fail", "error", "timeout", "crash")
DEFAULT_TIME_LIMIT_S = 2.0
DEFAULT_MEMORY_MB = 1024
WALL_FACTOR = 3.0
MAX_CPU_NS = 10**15  # ~11 days: any larger reported CPU time is forged  # wall-clock backstop per test = WALL_FACTOR × CPU limit + 0.5 s

__all__ = ["PassMatrix", "SandboxError", "STATUSES", "isolation_level", "run_pass_matrix"]


@dataclass
class PassMatrix:
    """Cells are [code, test]. ``verified[t]``: test t was judged outside the candidate's process."""

    passed: np.ndarray
    status: np.ndarray
    cpu_time_ns: np.ndarray
    detail: np.ndarray
    verified: np.ndarray
    load_errors: list[str] = field(default_factory=list)  # per code: why it did not load ('' if it did)
    outputs: list[str] = field(default_factory=list)  # per code: captured stdout+stderr (capped)
    isolation: dict[str, Any] = field(default_factory=dict)


def isolation_level(pool: Pool | None = None) -> dict[str, Any]:
    """What isolation the zygotes achieved on this machine (network, filesystem, uid drop)."""
    return dict((pool or shared_pool()).isolation)


def _syntax_error(code: str, setup: str) -> str:
    try:
        ast.parse(setup + "\n" + code)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def _run_code(pool: Pool, code: str, checks: list[Check], setup: str, time_limit_s: float, memory_mb: int) -> dict:
    request = {
        "code": code,
        "setup": setup,
        "tests": [{"kind": c.kind, "src": c.src} for c in checks],
        "time_limit": time_limit_s,
        "memory_mb": memory_mb,
        "wall_factor": WALL_FACTOR,
    }
    # generous backstop: every test may hit its wall deadline twice (buffered run, then the rerun)
    timeout = (len(checks) + 1) * 2 * (WALL_FACTOR * time_limit_s + 1.5) + 30
    return pool.call(request, timeout)


def run_pass_matrix(
    codes: Sequence[str],
    tests: Sequence[str],
    *,
    setup: str = "",
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    pool: Pool | None = None,
) -> PassMatrix:
    """Run every code against every test in the sandbox. Thread-safe: calls share the warm zygotes."""
    if time_limit_s <= 0 or memory_mb < 64:
        raise ValueError(f"time_limit_s must be > 0 and memory_mb >= 64, got {time_limit_s}, {memory_mb}")
    n, m = len(codes), len(tests)
    checks = [parse_test(t) for t in tests]
    shape = (n, m)
    status = np.full(shape, "error", dtype=object)
    detail = np.full(shape, "", dtype=object)
    cpu = np.zeros(shape, dtype=np.int64)
    passed = np.zeros(shape, dtype=bool)
    matrix = PassMatrix(passed, status, cpu, detail, np.array([c.verified for c in checks], dtype=bool), [""] * n, [""] * n)
    if n == 0 or m == 0:
        return matrix
    pool = pool or shared_pool()
    matrix.isolation = dict(pool.isolation)
    with ThreadPoolExecutor(max_workers=pool.size) as executor:
        futures = {}
        for i, code in enumerate(codes):
            error = _syntax_error(code, setup)
            if error:  # never reaches the sandbox
                status[i, :], detail[i, :], matrix.load_errors[i] = "error", error, error
            else:
                futures[i] = executor.submit(_run_code, pool, code, checks, setup, time_limit_s, memory_mb)
        for i, future in futures.items():
            try:
                reply = future.result()
            except SandboxError as exc:  # the zygote died under this candidate: its row, not the matrix
                status[i, :], detail[i, :], matrix.load_errors[i] = "crash", str(exc)[:300], str(exc)[:300]
                continue
            try:
                _fill_row(matrix, i, reply, checks)
            except Exception as exc:  # a malformed (forged) reply: this row crashes, not the matrix
                status[i, :], passed[i, :], detail[i, :] = "crash", False, f"malformed report: {type(exc).__name__}"
    return matrix


def _fill_row(matrix: PassMatrix, i: int, reply: dict, checks: list[Check]) -> None:
    load = reply.get("load") or {}
    if load.get("load") not in (None, "ok"):
        matrix.load_errors[i] = load.get("detail", load.get("load", ""))
    matrix.outputs[i] = reply.get("output", "")
    for j, (res, check) in enumerate(zip(reply["results"], checks)):
        res = res if isinstance(res, dict) else {"s": "error", "e": "no result reported"}
        state, reason = res.get("s", "error"), str(res.get("e", ""))
        if state == "value":  # the verdict is ours: compare plain data with the expected literal
            ok, reason = judge(check, res.get("v")) if check.verified else (False, "value for a statement test")
            state = "pass" if ok else "fail"
        elif state == "pass" and check.verified:
            state, reason = "fail", "pass claimed without a value"  # forged or broken report
        if state not in STATUSES:
            state, reason = "error", f"unknown status {state!r}"
        matrix.status[i, j] = state
        matrix.detail[i, j] = reason
        matrix.passed[i, j] = state == "pass"
        t = res.get("t", 0)
        matrix.cpu_time_ns[i, j] = min(max(t, 0), MAX_CPU_NS) if isinstance(t, int) else 0  # forged values clamped


from codedpo_assets.sandbox.timing import Timing, compare, time_candidates  # noqa: E402  (uses run_pass_matrix)

__all__ += ["Timing", "compare", "time_candidates"]
