"""Sandbox zygote: a warm, isolated server that forks one child per candidate program.

Runs as its own interpreter (``python -s -S -P <this directory> UID CGROUPS``) with a scrubbed
environment, so it imports nothing from the project and holds no secrets or inherited
descriptors; its modules import each other by name. (Not ``-I``: that ignores the environment's
PYTHONHASHSEED=0, and every zygote would order sets of strings its own way, so a candidate that
returns ``list(set(words))`` passed or failed by zygote.)

- ``isolation``: at start, a fresh network and mount namespace when it can (read-only filesystem,
  private /tmp and /dev/shm emptied after every run, a fresh IPC namespace when a run leaves IPC
  objects), a child subreaper, descriptors on the run cgroup (``CGROUPS``: JSON of cgroup paths)
  so every child's threads and descendants count against its CPU, memory and process limits.
- ``child``: what runs in the candidate's process: it receives test *calls* only (never expected
  values), runs them under per-test CPU limits and writes one JSON line per test.
- ``supervise``: the zygote's side of a run: the result protocol, a wall-clock deadline, killing
  and resuming in a fresh child when one dies, and every CPU figure, read from the cgroup counter.

What a candidate can and cannot influence: it decides what its own process computes and writes.
It cannot decide a value check's verdict (the expected value never reaches it and the caller
compares plain data), a test's or run's CPU time (read here, never taken from its lines), nor
claim a test it did not report (lines are taken only in plan order; a forged early end leaves the
rest as not run). A statement test run in its process is the exception: its verdict is its own,
and the caller marks it unverified.

Protocol on stdin/stdout: 4-byte big-endian length + JSON, one request → one response.
"""

# Warm imports: candidates mostly use these; importing them once here makes each fork cheap.
import bisect  # noqa: F401
import collections  # noqa: F401
import dataclasses  # noqa: F401
import datetime  # noqa: F401
import decimal  # noqa: F401
import fcntl
import fractions  # noqa: F401
import functools  # noqa: F401
import gc
import hashlib  # noqa: F401
import heapq  # noqa: F401
import itertools  # noqa: F401
import json
import math  # noqa: F401
import operator  # noqa: F401
import os
import re  # noqa: F401
import shutil
import signal
import statistics  # noqa: F401
import string  # noqa: F401
import struct
import sys
import tempfile
import typing  # noqa: F401

import child
import isolation
import state
import supervise


def _read_exact(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _reply(obj):
    data = json.dumps(obj).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(1, data) :]


def _start():
    """Isolate, open the cgroup, measure the timer; returns the isolation level to report."""
    state.UID = int(sys.argv[1]) if os.geteuid() == 0 else 0
    os.environ.clear()
    os.environ.update(state.SAFE_ENV, HOME="/tmp", TMPDIR="/tmp")  # /tmp: each run's own tmpfs when isolated
    accounting = isolation.open_cgroup(json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
    if state.CPU_FD >= 0:
        child.use_cgroup_clock()
    level = isolation.isolate()
    level["scratch"] = isolation.scratch_level()
    level["cpu_accounting"] = accounting
    level["limits"] = "cgroup: memory and process count of the whole run" if state.MEMORY_FD >= 0 else "rlimits per process"
    level["timing"] = (
        "CPU read by the zygote (cgroup counter)" if state.CPU_FD >= 0 else "CPU read by the zygote (/proc and rusage)"
    )
    state.DEVNULL_FD = fcntl.fcntl(os.open("/dev/null", os.O_RDONLY), fcntl.F_DUPFD, 100)
    state.ZYGOTE_PID = os.getpid()
    # inherited by every child: oversized writes fail with EFBIG, ITIMER_PROF raises the timeout
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    state.TIMER_EARLY_S = isolation.timer_delay()
    level["timer_early_ms"] = round(state.TIMER_EARLY_S * 1e3, 1)
    signal.signal(signal.SIGPROF, child.on_prof)
    state.WORK_ROOT = tempfile.mkdtemp(prefix="codedpo-sandbox-", dir="/tmp")
    state.SCRATCH_KEEP.add(state.WORK_ROOT)
    os.chmod(state.WORK_ROOT, 0o711)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]  # TextIOWrappers at start
    sys.stderr.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    return level


def main():
    level = _start()
    gc.freeze()  # forked children then do not copy-on-write every page during garbage collection
    while True:
        try:
            (size,) = struct.unpack(">I", _read_exact(4))
            req = json.loads(_read_exact(size))
        except EOFError:
            break
        if req.get("op") == "hello":
            _reply({"isolation": level, "pid": os.getpid()})
            continue
        try:
            _reply(supervise.run(req))
        except Exception as exc:  # report, keep serving
            _reply({"fatal": f"{type(exc).__name__}: {exc}"})
        if state.SCRATCH_PRIVATE:  # after the reply: the caller reads it meanwhile
            isolation.wipe_scratch()
    shutil.rmtree(state.WORK_ROOT, ignore_errors=True)


if __name__ == "__main__":
    main()
