"""The forked child: isolate itself, load the candidate, run its tests and report each one.

Everything here runs in the candidate's own process, so nothing it produces is trusted: values
travel back as tagged plain data for the zygote's caller to judge, and the per-test CPU it reports
(``rt``) is a diagnostic. Verdicts of time come from the zygote, which reads the run cgroup's
counter whenever this child stops and waits for its "go" (after loading, and after every batch of
results); a candidate that writes its own lines or patches the clocks here only misleads itself.
"""

import fcntl
import json
import os
import resource
import signal
import sys
import tempfile
import time

import state
from state import LIBC

FLUSH_NS = 5_000_000  # a child reports at least this often (wall) while tests keep finishing
FILE_CAP = 8 * 1024 * 1024  # RLIMIT_FSIZE: largest file a candidate may write
_INT_BOUND = 10**4000  # str() refuses ints beyond ~4300 digits


class _Timeout(BaseException):
    """Raised by the SIGPROF handler: BaseException so `except Exception` in candidates misses it."""


# Bound once: a candidate that rebinds names in this module or in ``time``/``os`` changes what it
# tells itself, not what the zygote measures.
_AssertionError = AssertionError
# thread CPU clock: with ITIMER_PROF armed, the process clock only advances at scheduler ticks here
_write, _read, _exit, _ptime, _setitimer = os.write, os.read, os._exit, time.thread_time_ns, signal.setitimer
_mono = time.monotonic_ns
_pread, _getrusage, _RUSAGE_SELF, _RUSAGE_CHILDREN = os.pread, resource.getrusage, resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN
_stdout, _stderr = sys.stdout, sys.stderr
_dumps, _type, _repr, _len = json.dumps, type, repr, len
_int, _float, _str, _bool, _bytes, _complex = int, float, str, bool, bytes, complex
_list, _tuple, _dict, _set, _frozenset, _none = list, tuple, dict, set, frozenset, type(None)
_SEQUENCE_TAGS: dict[type, str] = {_list: "l", _tuple: "t", _set: "S", _frozenset: "F"}
_cpu_value = state.cpu_value


def encode(value, depth=0):
    """Plain-data form of a value built from exact builtin types; anything else raises TypeError."""
    t = _type(value)
    if depth > 50:
        raise TypeError("value nested too deeply")
    if t is _bool:
        return ["B", value]
    if t is _none:
        return ["N"]
    if t is _int:
        return ["i", _str(value)] if -_INT_BOUND < value < _INT_BOUND else ["i", "huge"]
    if t is _float:
        return ["f", _repr(value)]
    if t is _complex:
        return ["c", _repr(value.real), _repr(value.imag)]
    if t is _str:
        return ["s", value]
    if t is _bytes:
        return ["b", value.hex()]
    if t is _list or t is _tuple or t is _set or t is _frozenset:
        return [_SEQUENCE_TAGS[t], [encode(v, depth + 1) for v in value]]
    if t is _dict:
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]]
    raise TypeError(f"unsupported result type {t.__name__}")


def _finish(messages):
    """Flush what the candidate printed, *then* send the last messages (the zygote kills the
    child as soon as it has them), then exit without cleanup."""
    for stream in (_stdout, _stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    _flush(messages)
    _exit(0)


def _flush(messages):
    lines = []
    for message in messages:
        try:
            lines.append(_dumps(message))
        except BaseException:  # e.g. an unencodable string: report the failure, never drop the test
            lines.append(_dumps({"i": message.get("i"), "s": "error", "e": "result not serializable"}))
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    while data:
        data = data[_write(state.RESULT_FD, data) :]


def _report_and_wait(messages, slow=False):
    """Send ``messages`` and a wait mark, then block until the zygote has read its counter.
    ``slow``: the batch ended because its last test alone took ``batch_cpu_ns``."""
    messages.append({"w": 1, "slow": 1} if slow else {"w": 1})
    _flush(messages)
    try:
        if not _read(state.GO_FD, 1):
            _exit(0)  # the zygote is gone
    except OSError:
        _exit(0)


_fired = [False]  # set by the CPU timer even if the candidate swallows _Timeout
_timer = [0, 0]  # the running test's start (tree CPU ns) and CPU limit (ns), for the SIGPROF handler


def _arm(limit, start):
    """Start a CPU limit counted from ``start`` (tree CPU ns). The kernel delivers SIGPROF ~2 ticks
    late, so the timer is armed that much early and the handler lets the code go on (re-armed)
    until the limit has really passed."""
    _timer[0], _timer[1] = start, _int(limit * 1e9)
    _setitimer(signal.ITIMER_PROF, max(limit - state.TIMER_EARLY_S, 0.001))


def on_prof(signum, frame):
    left = _timer[1] - (tree_cpu() - _timer[0])
    if left > 500_000:  # early: not yet
        _setitimer(signal.ITIMER_PROF, max(left / 1e9 - state.TIMER_EARLY_S, 0.001))
        return
    _fired[0] = True
    raise _Timeout()


def _tree_cpu_cgroup():
    """CPU ns of the whole run (all threads and descendants). Reading the thread clock first makes
    the kernel charge the running thread's pending time to the cgroup, so the counter is exact for
    this thread and current to the last tick for the others."""
    _ptime()
    return _cpu_value(_pread(state.USAGE_FD, 4096, 0))


def _tree_cpu_rusage():
    """Fallback without a cgroup: all threads of this process plus its waited-for children."""
    s, c = _getrusage(_RUSAGE_SELF), _getrusage(_RUSAGE_CHILDREN)
    return _int((s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime) * 1e9)


tree_cpu = _tree_cpu_rusage  # chosen once at start: ``use_cgroup_clock``


def use_cgroup_clock():
    global tree_cpu
    tree_cpu = _tree_cpu_cgroup


def stop(req, streak, timeouts, resolved):
    """The run's stop rule: ``max_timeouts`` timeouts in a row, and at least ``stop_share`` of the
    tests run so far timed out (a candidate that loops on a few inputs only keeps going)."""
    stop_at = req.get("max_timeouts") or 0
    return 0 < stop_at <= streak and timeouts >= req.get("stop_share", 0) * resolved


def _apply_limits(req, uid, cpu_s):
    cpu = int(cpu_s) + 2
    mem = int(req["memory_mb"]) * 1024 * 1024
    for res, value in (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (mem, mem)),
        (resource.RLIMIT_FSIZE, (FILE_CAP, FILE_CAP)),
        (resource.RLIMIT_NOFILE, (64, 64)),
        (resource.RLIMIT_CORE, (0, 0)),
    ):
        resource.setrlimit(res, value)
    if uid:
        os.setgroups([])
        os.setgid(uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (32, 32))  # per uid: enforced once we are not root
        os.setuid(uid)
    LIBC.prctl(state.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    LIBC.prctl(state.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # again: changing uid clears it
    if os.getppid() != state.ZYGOTE_PID:  # the zygote died before we armed it
        os._exit(0)


def _setup(req, plan, start, fds, workdir, uid):
    """Join the run's cgroups first, then arrange descriptors, directory and limits."""
    result_fd, go_fd, out_fd = (fcntl.fcntl(fd, fcntl.F_DUPFD, 200) for fd in fds)  # clear of the targets below
    os.setsid()
    LIBC.prctl(state.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    for fd in state.PROCS_FDS:
        os.write(fd, b"0")
    os.dup2(state.DEVNULL_FD, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.dup2(result_fd, state.RESULT_FD)
    os.dup2(go_fd, state.GO_FD)
    if state.CPU_FD >= 0:
        os.dup2(state.CPU_FD, state.USAGE_FD)
    else:
        os.dup2(state.DEVNULL_FD, state.USAGE_FD)
    os.closerange(state.GO_FD + 1, 1 << 16)
    os.chdir(workdir)  # environment (SAFE_ENV) and signal handlers were set up in the zygote
    if not state.SCRATCH_PRIVATE:
        os.environ["HOME"] = os.environ["TMPDIR"] = workdir
    tempfile.tempdir = None
    _apply_limits(req, uid, float(req["time_limit"]) + sum(limit for _, limit in plan[start:]))
    sys.argv = ["candidate"]  # sys.stdin/out/err wrap fds 0-2, now /dev/null and the output file


def _run_test(kind, code, namespace, limit, t0, result):
    """One test under its CPU limit (counted from ``t0``): a value (``value``), the values of its
    parts (``parts``: each evaluated on its own, an error kept per part), or a statement's verdict."""
    if kind == "invalid":
        raise SyntaxError(code)
    _arm(limit, t0)
    if kind == "value":
        value = eval(code, namespace)
        _setitimer(signal.ITIMER_PROF, 0)
        try:
            result["s"], result["v"] = "value", encode(value)
        except BaseException as exc:  # not plain data: cannot be verified, so not a pass
            result["s"], result["e"] = "fail", f"unverifiable result: {str(exc)[:200]}"
    elif kind == "parts":
        values = []
        for part in code:
            try:
                value = eval(part, namespace)
            except _Timeout:
                raise
            except BaseException as exc:
                values.append(["!", f"{_type(exc).__name__}: {str(exc)[:200]}"])
                continue
            try:
                values.append(encode(value))
            except BaseException as exc:
                values.append(["?", f"unverifiable result: {str(exc)[:200]}"])
        _setitimer(signal.ITIMER_PROF, 0)
        result["s"], result["v"] = "parts", values
    else:
        exec(code, namespace)
        _setitimer(signal.ITIMER_PROF, 0)
        result["s"] = "pass"


def run_child(req, program, compiled, plan, start, fds, workdir, uid, step, counts):
    """Runs in the forked child: run ``plan[start:]`` (test index, CPU limit) and report each by
    position; stops once the stop rule (``stop``) holds (``counts``: the run's timeouts in a row,
    timeouts and tests run before this child). ``step``: wait for the zygote after every test
    (exact per-test CPU); otherwise after any test that alone took ``batch_cpu_ns`` (so only the
    last test of a batch can be slow) and at least every FLUSH_NS."""
    try:
        _setup(req, plan, start, fds, workdir, uid)
    except BaseException as exc:  # setup failure is the sandbox's fault, not the candidate's
        _flush([{"setup_error": f"{_type(exc).__name__}: {exc}"}])
        _exit(71)
    if req.get("timing"):  # the zygote reads its counter before any candidate code runs
        _report_and_wait([{"ready": 1}])
    limit = float(req["time_limit"])
    namespace = {"__name__": "candidate", "__builtins__": __builtins__}
    try:
        _arm(limit, tree_cpu())
        exec(program, namespace)
        _setitimer(signal.ITIMER_PROF, 0)
    except _Timeout:
        _finish([{"load": "timeout", "detail": "loading the program exceeded the CPU limit"}])
    except BaseException as exc:
        _setitimer(signal.ITIMER_PROF, 0)
        _finish([{"load": "error", "detail": f"{_type(exc).__name__}: {str(exc)[:300]}"}])
    _report_and_wait([{"load": "ok"}])
    batch_cpu = 0 if step else _int(req.get("batch_cpu_ns") or 0)
    pending, (streak, timeouts, resolved) = [], counts
    last_flush = _mono()
    for k in range(start, _len(plan)):
        i, limit = plan[k]
        kind, code = compiled[i]
        _fired[0] = False
        result: dict = {"i": k}
        t0 = tree_cpu()
        try:
            _run_test(kind, code, namespace, limit, t0, result)
        except _Timeout:
            result["s"] = "timeout"
        except _AssertionError:
            _setitimer(signal.ITIMER_PROF, 0)
            result["s"] = "fail"
        except BaseException as exc:
            _setitimer(signal.ITIMER_PROF, 0)
            result["s"], result["e"] = "error", f"{_type(exc).__name__}: {str(exc)[:200]}"
        t_end = tree_cpu()
        result["rt"] = t_end - t0
        if _fired[0] or result["rt"] > limit * 1e9:  # the limit passed, whatever the code did about it
            result["s"] = "timeout"
            result.pop("v", None)
        pending.append(result)
        timed_out = result["s"] == "timeout"
        streak, timeouts, resolved = streak + 1 if timed_out else 0, timeouts + timed_out, resolved + 1
        if timed_out and stop(req, streak, timeouts, resolved):
            break
        slow = bool(batch_cpu) and result["rt"] >= batch_cpu
        if step or slow or _mono() - last_flush > FLUSH_NS:
            _report_and_wait(pending, slow)
            pending, last_flush = [], _mono()
    if pending:  # the last batch's CPU, exact before the exit's own
        _report_and_wait(pending)
    _finish([{"done": 1}])
