"""Sandbox zygote: a warm, isolated server that forks one child per candidate program.

Runs as its own interpreter (``python -s -S -P zygote.py UID CGROUPS``) with a scrubbed environment,
so it imports nothing from the project and holds no secrets or inherited descriptors. (Not ``-I``:
that ignores the environment's PYTHONHASHSEED=0, and every zygote would order sets of strings its
own way, so a candidate that returns ``list(set(words))`` passed or failed by zygote.) At start it
enters a fresh network and mount namespace when it can (read-only filesystem) and becomes a child
subreaper, so no descendant of a candidate can escape the sweep.

/tmp and /dev/shm are the zygote's own tmpfs mounts (also a run's working directory, HOME and
TMPDIR), emptied once each run's processes are gone, with a fresh IPC namespace whenever a run
leaves IPC objects: nothing one run writes is seen by another, and a run that fills its scratch
space fills only its own. When the caller created cgroups for this zygote
(``CGROUPS``: JSON of cgroup paths), every child joins them first: its CPU time then covers all
its threads and descendant processes, and memory and process counts are limited for the whole
tree. The zygote watches that CPU time too and kills a run whose tree exceeds the test's limit.

Protocol on stdin/stdout: 4-byte big-endian length + JSON, one request → one response.
A child receives test *calls* only (never expected values), runs them in-process with a per-test
CPU-time limit, and writes one JSON line per test to a result pipe; the zygote enforces a
wall-clock deadline, kills the child's processes and resumes at the next test in a fresh child
when one dies. Values travel back as tagged plain data built from exact builtin types.
"""

import ctypes
import fcntl
import gc
import json
import os
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time

# Warm imports: candidates mostly use these; importing them once here makes each fork cheap.
import bisect  # noqa: F401
import collections  # noqa: F401
import dataclasses  # noqa: F401
import datetime  # noqa: F401
import decimal  # noqa: F401
import fractions  # noqa: F401
import functools
import hashlib  # noqa: F401
import heapq  # noqa: F401
import itertools  # noqa: F401
import math  # noqa: F401
import operator  # noqa: F401
import re  # noqa: F401
import statistics  # noqa: F401
import string  # noqa: F401
import typing  # noqa: F401

LIBC = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWUSER, CLONE_NEWIPC = 0x00020000, 0x40000000, 0x10000000, 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38
SAFE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
OUTPUT_CAP = 64 * 1024  # bytes of stdout+stderr kept per candidate
FILE_CAP = 8 * 1024 * 1024  # RLIMIT_FSIZE: largest file a candidate may write
FLUSH_NS = 5_000_000  # a buffered child reports at least this often while tests keep finishing
MAX_MESSAGE = 1 << 20  # a child's result line longer than this is cut and counted as a failure
USAGE_FD = 4  # the child's read-only handle on its cgroup's CPU counter
WATCH_S = 0.05  # how often the zygote checks a running child's whole-tree CPU time
WATCH_SLACK_NS = 50_000_000  # results arrive in batches: CPU of reported-late tests is not a timeout


class _Timeout(BaseException):
    """Raised by the SIGPROF handler: BaseException so `except Exception` in candidates misses it."""


_AssertionError = AssertionError
# thread CPU clock: with ITIMER_PROF armed, the process clock only advances at scheduler ticks here
_write, _exit, _ptime, _setitimer = os.write, os._exit, time.thread_time_ns, signal.setitimer
_mono = time.monotonic_ns
_pread, _getrusage, _RUSAGE_SELF, _RUSAGE_CHILDREN = os.pread, resource.getrusage, resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN
_stdout, _stderr = sys.stdout, sys.stderr
_dumps, _type, _repr, _len = json.dumps, type, repr, len
_int, _float, _str, _bool, _bytes, _complex = int, float, str, bool, bytes, complex
_list, _tuple, _dict, _set, _frozenset, _none = list, tuple, dict, set, frozenset, type(None)


_INT_BOUND = 10**4000  # str() refuses ints beyond ~4300 digits


def _encode(value, depth=0):
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
        tag = {_list: "l", _tuple: "t", _set: "S", _frozenset: "F"}[t]
        return [tag, [_encode(v, depth + 1) for v in value]]
    if t is _dict:
        return ["d", [[_encode(k, depth + 1), _encode(v, depth + 1)] for k, v in value.items()]]
    raise TypeError(f"unsupported result type {t.__name__}")


def _finish(result_fd, messages):
    """Flush what the candidate printed, *then* send the last messages (the zygote kills the
    child as soon as it has them), then exit without cleanup."""
    for stream in (_stdout, _stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    _flush(result_fd, messages)
    _exit(0)


def _flush(fd, messages):
    lines = []
    for message in messages:
        try:
            lines.append(_dumps(message))
        except BaseException:  # e.g. an unencodable string: report the failure, never drop the test
            lines.append(_dumps({"i": message.get("i"), "s": "error", "e": "result not serializable", "t": message.get("t", 0)}))
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    while data:
        data = data[_write(fd, data) :]


_fired = [False]  # set by the CPU timer even if the candidate swallows _Timeout


_timer = [0, 0]  # the running test's start (tree CPU ns) and CPU limit (ns), for the SIGPROF handler


def _arm(limit, start):
    """Start a CPU limit counted from ``start`` (tree CPU ns). The kernel delivers SIGPROF ~2 ticks
    late, so the timer is armed that much early and the handler lets the code go on (re-armed)
    until the limit has really passed."""
    _timer[0], _timer[1] = start, _int(limit * 1e9)
    _setitimer(signal.ITIMER_PROF, max(limit - TIMER_EARLY_S, 0.001))


def _on_prof(signum, frame):
    left = _timer[1] - (_tree_cpu() - _timer[0])
    if left > 500_000:  # early: not yet
        _setitimer(signal.ITIMER_PROF, max(left / 1e9 - TIMER_EARLY_S, 0.001))
        return
    _fired[0] = True
    raise _Timeout()


def _tree_cpu_cgroup():
    """CPU ns of the whole run (all threads and descendants). Reading the thread clock first makes
    the kernel charge the running thread's pending time to the cgroup, so the counter is exact for
    this thread and current to the last tick for the others."""
    _ptime()
    return _cpu_value(_pread(USAGE_FD, 4096, 0))


def _tree_cpu_rusage():
    """Fallback without a cgroup: all threads of this process plus its waited-for children."""
    s, c = _getrusage(_RUSAGE_SELF), _getrusage(_RUSAGE_CHILDREN)
    return _int((s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime) * 1e9)


def _cpu_value(data):
    """cgroup v1 ``cpuacct.usage`` holds nanoseconds; cgroup v2 ``cpu.stat`` a ``usage_usec`` line."""
    if data[:11] == b"usage_usec ":
        return _int(data[11 : data.index(b"\n")]) * 1000
    return _int(data)


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
    LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # again: changing uid clears it
    if os.getppid() != ZYGOTE_PID:  # the zygote died before we armed it
        os._exit(0)


def _bind_ro(source, target):
    if LIBC.mount(source.encode(), target.encode(), None, MS_BIND, None) != 0:
        return False
    LIBC.mount(None, target.encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
    return True


def _wipe_scratch():
    """Empty the scratch tmpfs mounts (/tmp, /dev/shm) once a run's processes are all gone, so no
    later run sees what it wrote; a new IPC namespace if it left SysV objects or message queues.
    (Emptying costs microseconds; a mount namespace per run cost an RCU grace period per exit.)"""
    global IPC_FRESH
    for root in SCRATCH_ROOTS:
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.path in SCRATCH_KEEP:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    try:
                        os.unlink(entry.path)
                    except OSError:
                        pass
    if not _ipc_objects_left():
        return
    if LIBC.unshare(CLONE_NEWIPC) == 0:
        _mount_mqueue()
    else:
        IPC_FRESH = False


def _ipc_objects_left():
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}", "rb") as fh:
                if fh.read().count(b"\n") > 1:  # a header line, then one line per object
                    return True
        except OSError:
            pass
    return bool(MQUEUE and os.listdir(MQUEUE))


def _mount_mqueue():
    """Show this IPC namespace's POSIX message queues (mq_open needs no mount, so we look here)."""
    global MQUEUE
    MQUEUE = "/dev/mqueue" if os.path.isdir("/dev/mqueue") and LIBC.mount(b"mqueue", b"/dev/mqueue", b"mqueue", MS_NOSUID | MS_NODEV, None) == 0 else ""


def _stop(req, streak, timeouts, resolved):
    """The run's stop rule: ``max_timeouts`` timeouts in a row, and at least ``stop_share`` of the
    tests run so far timed out (a candidate that loops on a few inputs only keeps going)."""
    stop_at = req.get("max_timeouts") or 0
    return 0 < stop_at <= streak and timeouts >= req.get("stop_share", 0) * resolved


def _child(req, program, compiled, plan, start, result_fd, out_fd, workdir, uid, buffered, counts):
    """Runs in the forked child: isolate, load the candidate, run ``plan[start:]`` (test index,
    CPU limit) and report each by position; stops once the stop rule (``_stop``) holds
    (``counts``: the run's timeouts in a row, timeouts and tests run before this child)."""
    try:
        os.setsid()
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        for fd in PROCS_FDS:  # join the run's cgroups before anything else can run
            os.write(fd, b"0")
        os.dup2(DEVNULL_FD, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        if result_fd != 3:
            os.dup2(result_fd, 3)
            result_fd = 3
        if CPU_FD >= 0:
            os.dup2(CPU_FD, USAGE_FD)
        os.closerange(USAGE_FD + 1 if CPU_FD >= 0 else USAGE_FD, 1 << 16)
        os.chdir(workdir)  # environment (SAFE_ENV) and signal handlers were set up in the zygote
        if not SCRATCH_PRIVATE:
            os.environ["HOME"] = os.environ["TMPDIR"] = workdir
        tempfile.tempdir = None
        _apply_limits(req, uid, float(req["time_limit"]) + sum(limit for _, limit in plan[start:]))
        sys.argv = ["candidate"]  # sys.stdin/out/err wrap fds 0-2, now /dev/null and the output file
    except BaseException as exc:  # setup failure is the sandbox's fault, not the candidate's
        _flush(result_fd, [{"setup_error": f"{_type(exc).__name__}: {exc}"}])
        _exit(71)
    limit = float(req["time_limit"])
    namespace = {"__name__": "candidate", "__builtins__": __builtins__}
    try:
        _arm(limit, _tree_cpu())
        exec(program, namespace)
        _setitimer(signal.ITIMER_PROF, 0)
    except _Timeout:
        _finish(result_fd, [{"load": "timeout", "detail": "loading the program exceeded the CPU limit"}])
    except BaseException as exc:
        _setitimer(signal.ITIMER_PROF, 0)
        _finish(result_fd, [{"load": "error", "detail": f"{_type(exc).__name__}: {str(exc)[:300]}"}])
    # Buffered: results go out in batches (cheap tests cost no pipe round trip each), at least
    # every FLUSH_NS; unbuffered (after an unexplained death) one line per test pins the culprit.
    pending = [{"load": "ok"}]
    if not buffered:
        _flush(result_fd, pending)
        pending = []
    last_flush, (streak, timeouts, resolved), t_end = _mono(), counts, 0
    for k in range(start, _len(plan)):
        i, limit = plan[k]
        kind, code = compiled[i]
        result = {"i": k}
        _fired[0] = False
        t0 = _tree_cpu()
        try:
            if kind == "invalid":
                raise SyntaxError(code)
            _arm(limit, t0)
            if kind == "value":
                value = eval(code, namespace)
                _setitimer(signal.ITIMER_PROF, 0)
                try:
                    result["s"], result["v"] = "value", _encode(value)
                except BaseException as exc:  # not plain data: cannot be verified, so not a pass
                    result["s"], result["e"] = "fail", f"unverifiable result: {str(exc)[:200]}"
            else:
                exec(code, namespace)
                _setitimer(signal.ITIMER_PROF, 0)
                result["s"] = "pass"
        except _Timeout:
            result["s"] = "timeout"
        except _AssertionError:
            _setitimer(signal.ITIMER_PROF, 0)
            result["s"] = "fail"
        except BaseException as exc:
            _setitimer(signal.ITIMER_PROF, 0)
            result["s"], result["e"] = "error", f"{_type(exc).__name__}: {str(exc)[:200]}"
        t_end = _tree_cpu()
        result["t"] = t_end - t0
        if _fired[0] or result["t"] > limit * 1e9:  # the limit passed, whatever the code did about it
            result["s"] = "timeout"
            result.pop("v", None)
        pending.append(result)
        timed_out = result["s"] == "timeout"
        streak, timeouts, resolved = streak + 1 if timed_out else 0, timeouts + timed_out, resolved + 1
        if timed_out and _stop(req, streak, timeouts, resolved):
            break
        if not buffered or _mono() - last_flush > FLUSH_NS:
            _flush(result_fd, pending)
            pending, last_flush = [], _mono()
    done = {"done": 1}
    if req.get("settle") and t_end:  # a thread or child still exiting when the last test returned:
        time.sleep(SETTLE_S)  # idle, so its last tick is charged, then count what came after
        done["tail"] = _tree_cpu() - t_end
    pending.append(done)
    _finish(result_fd, pending)


def _children(pid):
    """Direct children of ``pid`` (orphaned descendants land here: we are a subreaper)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2 :].split()
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _sweep(uid):
    """Kill every remaining descendant; returns how many processes had to be killed."""
    killed = 0
    me = os.getpid()
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return killed
        if uid:  # one kill(-1) as the sandbox uid reaches every process of that uid
            reaper = os.fork()
            if reaper == 0:
                try:
                    os.setuid(uid)
                    os.kill(-1, signal.SIGKILL)
                finally:
                    os._exit(0)
            os.waitpid(reaper, 0)
        for pid in _children(me):
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.001)


def _cgroup_cpu():
    """The run's whole-tree CPU ns as the zygote sees it (to the last tick); 0 without a cgroup."""
    return _cpu_value(os.pread(CPU_FD, 4096, 0)) if CPU_FD >= 0 else 0


def _oom_kills():
    """How many processes the kernel killed for the run's memory limit so far (-1: unknown)."""
    if EVENTS_FD < 0:
        return -1
    for line in os.pread(EVENTS_FD, 4096, 0).splitlines():
        if line.startswith(b"oom_kill "):
            return int(line.split()[1])
    return -1


def _run_one(req, program, compiled, plan, start, uid, results, buffered, counts):
    """One child from plan position ``start``; fills ``results``.

    Returns (next start, load info, output, rerun, done, tail): ``rerun`` means a buffered child
    died with tests unresolved, so they must run again unbuffered to learn which test killed it;
    ``done``: the child ended its plan itself; tail: CPU charged after its last test (``settle``).
    """
    workdir = "/tmp" if SCRATCH_PRIVATE else tempfile.mkdtemp(prefix="cand-", dir=WORK_ROOT)
    if uid and not SCRATCH_PRIVATE:
        os.chown(workdir, uid, uid)
    out_fd = os.memfd_create("output")
    r, w = os.pipe()
    oom_before = _oom_kills()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            _child(req, program, compiled, plan, start, w, out_fd, workdir, uid, buffered, counts)
        finally:
            os._exit(70)
    os.close(w)
    load_limit = float(req["time_limit"])
    factor = float(req["wall_factor"])

    def current_limit():
        return plan[current][1] if load is not None and current < len(plan) else load_limit

    current, load, buf, finished, ended_by, tail = start, None, b"", False, "crash", 0
    deadline = time.monotonic() + factor * current_limit() + 0.5
    cpu_base = _cgroup_cpu()
    while not finished:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            ended_by = "timeout"
            break
        ready, _, _ = select.select([r], [], [], min(remaining, WATCH_S) if CPU_FD >= 0 else remaining)
        if not ready:  # descendants and C calls escape the child's own timer, not the cgroup
            if CPU_FD >= 0 and _cgroup_cpu() - cpu_base > current_limit() * 1e9 + WATCH_SLACK_NS:
                ended_by = "timeout"
                break
            continue
        chunk = os.read(r, 65536)
        if not chunk:
            break
        buf += chunk
        advanced = False
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except (ValueError, RecursionError):
                continue  # garbage (or a nesting bomb) on the result pipe: ignored, no test passes by it
            if not isinstance(msg, dict):
                continue
            if "load" in msg and load is None:
                load, advanced = msg, True
                if msg["load"] != "ok":
                    finished = True
                    break
            elif "setup_error" in msg and load is None:  # real (sandbox) or forged: this candidate crashes
                load, finished = {"load": "crash", "detail": "sandbox setup failed: " + str(msg["setup_error"])[:200]}, True
                break
            elif msg.get("i") == current and load is not None and current < len(plan):
                results[current] = msg
                current, advanced = current + 1, True
            elif "done" in msg and load is not None:  # positions not reported were not run (timeout budget)
                finished, tail = True, msg.get("tail", 0)
                break
        if advanced:
            deadline = time.monotonic() + factor * current_limit() + 0.5
            cpu_base = _cgroup_cpu()
        if len(buf) > MAX_MESSAGE:
            buf = b""
    os.close(r)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    _sweep(uid)
    spent = _cgroup_cpu() - cpu_base  # every process of the run is gone: the counter is exact
    output = os.pread(out_fd, OUTPUT_CAP, 0)
    os.close(out_fd)
    if not SCRATCH_PRIVATE:
        shutil.rmtree(workdir, ignore_errors=True)
    if finished or load is not None and load["load"] != "ok":
        return (len(plan) if load is None or load["load"] != "ok" else current), load, output, False, finished, tail
    if load is None and buffered:  # "load ok" may have died in the buffer: find out unbuffered
        return start, None, output, True, False, 0
    if load is None:  # died or hung while loading the program
        load = {"load": ended_by, "detail": "process ended while loading the program"}
        return len(plan), load, output, False, False, 0
    if buffered:
        return current, load, output, True, False, 0
    detail = f"child {ended_by} during test"
    if ended_by == "crash" and oom_before >= 0 and _oom_kills() > oom_before:
        detail = "killed: memory limit of the run (cgroup)"
    elif ended_by == "timeout":
        detail = "killed: CPU time of the run's processes exceeded the limit" if CPU_FD >= 0 and spent > current_limit() * 1e9 else "killed: wall-clock deadline"
    results[current] = {"i": current, "s": ended_by, "e": detail, "t": max(spent, 0)}
    return current + 1, load, output, False, False, 0


@functools.lru_cache(maxsize=8)
def _compile_tests(tests):
    """Compiled test list; cached because every candidate of a prompt shares it."""
    compiled = []
    for kind, src in tests:
        try:
            compiled.append((kind, compile(src, "<test>", "eval" if kind == "value" else "exec")))
        except (SyntaxError, ValueError) as exc:
            compiled.append(("invalid", f"test does not compile: {exc}"))
    return compiled


def _set_run_limits(req):
    """Whole-tree memory and process limits of the run's cgroup (written only when they change)."""
    for fd, value in ((MEMORY_FD, int(req["memory_mb"]) * 1024 * 1024), (PIDS_FD, PIDS_MAX)):
        if fd >= 0 and _written.get(fd) != value:
            try:
                os.pwrite(fd, str(value).encode(), 0)
                _written[fd] = value
            except OSError:
                pass


_written = {}


def run(req):
    """Run one candidate against its plan of (test index, CPU limit); resume after every crashed
    test; once the stop rule (``_stop``) holds, the rest is reported as not run."""
    compiled = _compile_tests(tuple((t["kind"], t["src"]) for t in req["tests"]))
    limit = float(req["time_limit"])
    plan = [(int(i), float(l)) for i, l in req["plan"]] if req.get("plan") is not None else [(i, limit) for i in range(len(compiled))]
    results = [None] * len(plan)
    try:
        program = compile(req["setup"] + "\n" + req["code"], "<candidate>", "exec")
    except (SyntaxError, ValueError) as exc:
        load = {"load": "error", "detail": f"{type(exc).__name__}: {exc}"}
        return {"results": [{"i": k, "s": "error", "e": load["detail"], "t": 0} for k in range(len(plan))], "load": load, "output": "", "children": 0}
    _set_run_limits(req)
    start, load, outputs, children, tail = 0, None, b"", 0, 0
    buffered = True
    while start < len(plan):
        streak = 0
        while streak < start and results[start - 1 - streak]["s"] == "timeout":
            streak += 1
        counts = (streak, sum(results[k]["s"] == "timeout" for k in range(start)), start)
        if streak and _stop(req, *counts):
            break
        start, load_now, output, rerun, done, tail = _run_one(req, program, compiled, plan, start, UID, results, buffered, counts)
        buffered = not rerun
        children += 1
        outputs = (outputs + output)[:OUTPUT_CAP]
        load = load or load_now
        if load_now is not None and load_now["load"] != "ok":
            load = load_now
            status = "error" if load_now["load"] == "error" else load_now["load"]
            for k, res in enumerate(results):
                if res is None:
                    results[k] = {"i": k, "s": status, "e": load_now.get("detail", ""), "t": 0}
            break
        if done:
            break
    for k, res in enumerate(results):
        if res is None:
            results[k] = {"i": k, "s": "skipped", "t": 0}
    return {"results": results, "load": load, "output": outputs.decode("utf-8", "backslashreplace"), "children": children, "tail_cpu_ns": tail}


def _expose_stdlib():
    """Bind the interpreter's library dirs under /tmp so a dropped uid can import from them.

    (They may live under a private home directory, e.g. pyenv in /root; the bind is read-only.
    Runs write to the same tmpfs, emptied after each run: ``_wipe_scratch``.)
    """
    for i, path in enumerate(list(sys.path)):
        if not os.path.isdir(path):
            continue
        target = f"/tmp/.python-lib-{i}"
        os.makedirs(target, mode=0o755, exist_ok=True)
        if _bind_ro(path, target):
            SCRATCH_KEEP.add(target)
            sys.path[i] = target
    return f"{len(SCRATCH_KEEP)} library dirs bound read-only under /tmp"


def _open_cgroup(spec):
    """Descriptors on the run cgroup's files, opened before the filesystem turns read-only and
    moved above the descriptors a child rearranges. Returns what CPU accounting this gives."""
    global PROCS_FDS, CPU_FD, MEMORY_FD, PIDS_FD, EVENTS_FD

    def high(path, flags):
        if not path:
            return -1
        fd = os.open(path, flags)
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 100)
        os.close(fd)
        return moved

    try:
        PROCS_FDS = [high(p, os.O_WRONLY) for p in spec.get("procs", [])]
        CPU_FD = high(spec.get("cpu"), os.O_RDONLY)
        MEMORY_FD = high(spec.get("memory_limit"), os.O_WRONLY)
        PIDS_FD = high(spec.get("pids_max"), os.O_WRONLY)
        EVENTS_FD = high(spec.get("memory_events"), os.O_RDONLY)
        _cpu_value(os.pread(CPU_FD, 4096, 0))
    except (OSError, ValueError, TypeError) as exc:
        PROCS_FDS, CPU_FD, MEMORY_FD, PIDS_FD, EVENTS_FD = [], -1, -1, -1, -1
        return f"threads + waited-for children (getrusage; cgroup unusable: {type(exc).__name__})"
    if CPU_FD < 0:
        return "threads + waited-for children (getrusage; no cgroup)"
    return f"cgroup {spec.get('kind', '')}: every thread and descendant process".replace("  ", " ")


def isolate():
    """Enter fresh network + mount namespaces where the kernel allows; report what was achieved."""
    level = {"uid_drop": bool(UID), "network": "shared", "filesystem": "shared", "subreaper": False}
    if os.geteuid() != 0:  # unprivileged: try a user namespace mapping our uid to root inside
        uid, gid = os.getuid(), os.getgid()
        if LIBC.unshare(CLONE_NEWUSER) == 0:
            try:
                with open("/proc/self/setgroups", "w") as fh:
                    fh.write("deny")
                with open("/proc/self/uid_map", "w") as fh:
                    fh.write(f"0 {uid} 1")
                with open("/proc/self/gid_map", "w") as fh:
                    fh.write(f"0 {gid} 1")
            except OSError:
                pass
    if LIBC.unshare(CLONE_NEWNET) == 0:
        level["network"] = "isolated (empty network namespace)"
    if LIBC.unshare(CLONE_NEWNS) == 0 and LIBC.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0:
        global SCRATCH_PRIVATE, IPC_FRESH
        tmp_ok = LIBC.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, SCRATCH_OPTIONS) == 0
        if tmp_ok and os.path.isdir("/dev/shm") and LIBC.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV, SCRATCH_OPTIONS) == 0:
            SCRATCH_ROOTS.append("/dev/shm")
        IPC_FRESH = LIBC.unshare(CLONE_NEWIPC) == 0
        if IPC_FRESH:
            _mount_mqueue()
        failed = []
        with open("/proc/self/mountinfo") as fh:
            mounts = [line.split()[4] for line in fh]
        for mountpoint in mounts:
            if mountpoint in SCRATCH_ROOTS:
                continue
            if LIBC.mount(None, mountpoint.encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY, None) != 0:
                failed.append(mountpoint)
        if tmp_ok:
            level["stdlib"] = _expose_stdlib()
            SCRATCH_PRIVATE = True
        if tmp_ok and not failed:
            level["filesystem"] = "read-only, private /tmp (mount namespace)"
        elif tmp_ok:
            level["filesystem"] = f"private /tmp; still writable: {failed[:5]}"
    level["subreaper"] = LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    return level


def _scratch_level():
    if SCRATCH_PRIVATE:
        return ("private per run: /tmp and /dev/shm (cwd, HOME, TMPDIR) are this zygote's own tmpfs, emptied after every run"
                + ("; fresh IPC namespace whenever a run leaves SysV objects or message queues" if IPC_FRESH else ""))
    return "per run: working directory, HOME and TMPDIR only; /tmp is shared (no mount namespace)"


def _timer_delay():
    """How late SIGPROF arrives after its CPU interval (minus 1 ms of margin), least of 3 tries."""
    fired = []
    signal.signal(signal.SIGPROF, lambda signum, frame: fired.append(time.process_time_ns()))
    delays = []
    for _ in range(3):
        fired.clear()
        start = time.process_time_ns()
        signal.setitimer(signal.ITIMER_PROF, 0.001)
        while not fired and time.process_time_ns() - start < 100_000_000:
            pass
        signal.setitimer(signal.ITIMER_PROF, 0)
        if fired:
            delays.append((fired[0] - start) / 1e9 - 0.001)
    signal.signal(signal.SIGPROF, signal.SIG_DFL)
    return max(min(delays, default=0.0) - 0.001, 0.0)


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


def main():
    global UID, WORK_ROOT, _tree_cpu
    UID = int(sys.argv[1]) if os.geteuid() == 0 else 0
    os.environ.clear()
    os.environ.update(SAFE_ENV, HOME="/tmp", TMPDIR="/tmp")  # /tmp: each run's own tmpfs when isolated
    accounting = _open_cgroup(json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
    _tree_cpu = _tree_cpu_cgroup if CPU_FD >= 0 else _tree_cpu_rusage
    level = isolate()
    level["scratch"] = _scratch_level()
    level["cpu_accounting"] = accounting
    level["limits"] = "cgroup: memory and process count of the whole run" if MEMORY_FD >= 0 else "rlimits per process"
    global DEVNULL_FD, ZYGOTE_PID
    DEVNULL_FD = fcntl.fcntl(os.open("/dev/null", os.O_RDONLY), fcntl.F_DUPFD, 100)
    ZYGOTE_PID = os.getpid()
    # inherited by every child: oversized writes fail with EFBIG, ITIMER_PROF raises _Timeout
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    global TIMER_EARLY_S
    TIMER_EARLY_S = _timer_delay()
    level["timer_early_ms"] = round(TIMER_EARLY_S * 1e3, 1)
    signal.signal(signal.SIGPROF, _on_prof)
    WORK_ROOT = tempfile.mkdtemp(prefix="codedpo-sandbox-", dir="/tmp")
    SCRATCH_KEEP.add(WORK_ROOT)
    os.chmod(WORK_ROOT, 0o711)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.stdout.reconfigure(errors="backslashreplace")
    sys.stderr.reconfigure(errors="backslashreplace")
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
            _reply(run(req))
        except Exception as exc:  # report, keep serving
            _reply({"fatal": f"{type(exc).__name__}: {exc}"})
        if SCRATCH_PRIVATE:  # after the reply: the caller reads it meanwhile
            _wipe_scratch()
    shutil.rmtree(WORK_ROOT, ignore_errors=True)


UID = 0
WORK_ROOT = "/tmp"
DEVNULL_FD = 0
ZYGOTE_PID = 0
SCRATCH_PRIVATE = False  # /tmp (and /dev/shm) are tmpfs mounts of our own, wiped after every run
SCRATCH_OPTIONS = b"size=64m,nr_inodes=65536,mode=1777"  # a run's scratch space (its pages count as its memory)
SCRATCH_ROOTS = ["/tmp"]
SCRATCH_KEEP = set()  # the zygote's own entries in /tmp: library binds, its work root
IPC_FRESH, MQUEUE = False, ""
SETTLE_S = 0.002  # idle wait after the last test of a timing run, for exiting threads and children
TIMER_EARLY_S = 0.0  # how much earlier than its limit a test's CPU timer is armed (measured at start)
PIDS_MAX = 64  # processes + threads of one run (cgroup), besides RLIMIT_NPROC per sandbox uid
PROCS_FDS, CPU_FD, MEMORY_FD, PIDS_FD, EVENTS_FD = [], -1, -1, -1, -1
_tree_cpu = _tree_cpu_rusage

if __name__ == "__main__":
    main()
