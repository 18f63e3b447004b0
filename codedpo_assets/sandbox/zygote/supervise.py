"""The zygote's side of a run: fork a child, read its results, measure its CPU, enforce limits.

Every time figure here is read by the zygote itself from the run cgroup's CPU counter (threads
and descendant processes included), at moments when the child is stopped waiting for a "go":
after loading, after each batch of results, and once every process of the run is gone. A batch's
CPU is therefore exact; a test's own CPU is exact when it ran alone (``step``: timing runs, and
reruns after a crash) and bounded by its batch's otherwise. The child ends a batch right after any
test that alone took ``batch_cpu_ns``, so the other tests of a batch are bounded by that: the
only thing a child decides here is where its batches end, and a child that hides a slow test in
the middle of a batch lowers only its own figure for that test. What the child reports about time
(``rt``) is kept as a diagnostic only. Result lines are accepted only in plan order, only with
known fields, and a run cannot claim a test it did not report.
"""

import fcntl
import functools
import json
import os
import resource
import select
import shutil
import signal
import tempfile
import time

import child
import isolation
import state

OUTPUT_CAP = 64 * 1024  # bytes of stdout+stderr kept per candidate
MAX_MESSAGE = 1 << 20  # a child's result line longer than this is cut and counted as a failure
WATCH_S = 0.05  # how often the zygote checks a running child's whole-tree CPU time
WATCH_SLACK_NS = 50_000_000  # CPU a batch may use beyond its tests' limits (timer latency, harness)
PIDS_MAX = 64  # processes + threads of one run (cgroup), besides RLIMIT_NPROC per sandbox uid
SETTLE_S = 0.005  # timing: idle wait after the last test, so threads still running are charged (> 1 tick)
RESULT_FIELDS = ("s", "v", "e", "rt")  # all a result line may carry besides its position


class RunClock:
    """CPU ns of one run's processes since its fork, as the zygote reads it: the run cgroup's
    counter; without a cgroup, the child's threads (``/proc``) while it runs and the reaped
    processes' rusage once all are gone."""

    def __init__(self):
        self.base = self._counter() if state.CPU_FD >= 0 else 0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.reaped_base = usage.ru_utime + usage.ru_stime

    @staticmethod
    def _counter():
        return state.cpu_value(os.pread(state.CPU_FD, 4096, 0))

    def now(self, pid):
        if state.CPU_FD >= 0:
            return self._counter() - self.base
        return max(_live_threads_ns(pid), _process_ticks_ns(pid))

    def final(self, pid, last):
        """Once every process of the run is gone (never below a reading taken during the run)."""
        if state.CPU_FD >= 0:
            return max(self._counter() - self.base, last)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return max(int((usage.ru_utime + usage.ru_stime - self.reaped_base) * 1e9), last)


def _live_threads_ns(pid):
    """CPU ns of the process's running threads (exact, but a thread's time leaves with it)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as fh:
                total += int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return total


def _process_ticks_ns(pid):
    """CPU of the process, its exited threads and waited-for children, at clock-tick resolution."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        fields = stat[stat.rfind(b")") + 2 :].split()
        return int(sum(int(f) for f in fields[11:15]) * 1e9 / TICKS_PER_S)
    except (OSError, ValueError, IndexError):
        return 0


TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _oom_kills():
    """How many processes the kernel killed for the run's memory limit so far (-1: unknown)."""
    if state.EVENTS_FD < 0:
        return -1
    for line in os.pread(state.EVENTS_FD, 4096, 0).splitlines():
        if line.startswith(b"oom_kill "):
            return int(line.split()[1])
    return -1


class _Batch:
    """Positions reported since the last counter reading; their CPU once the next reading comes."""

    def __init__(self, plan, results, fast_ns):
        self.plan, self.results, self.positions, self.mark = plan, results, [], 0
        self.fast_ns = fast_ns  # a test that took this long alone ends its batch (0: batches end by wall time)

    def close(self, now, slow_last=False):
        """Give each position its share of the batch's CPU and a bound on its own: the batch's
        CPU, or ``fast_ns`` for a test not ending its batch by its own time; a batch that used
        more CPU than its tests' limits (plus slack) passed no test in time."""
        spent = max(now - self.mark, 0)
        self.mark = now
        if not self.positions:
            return
        allowed = sum(self.plan[k][1] for k in self.positions) * 1e9 + WATCH_SLACK_NS
        last = len(self.positions) - 1
        for n, k in enumerate(self.positions):
            res = self.results[k]
            alone = not last or not self.fast_ns or (slow_last and n == last)
            res["cpu"], res["bound"] = spent // len(self.positions), spent if alone else min(spent, self.fast_ns)
            if spent > allowed and res["s"] != "timeout":
                res.pop("v", None)
                res["s"], res["e"] = (
                    "timeout",
                    f"over the CPU limit by the zygote's counter ({spent / 1e6:.1f} ms for {allowed / 1e6:.1f} ms)",
                )
        self.positions = []


def _accept(msg, k):
    """A result line as the zygote keeps it: its position and known fields, nothing else."""
    clean = {"i": k, "s": "error", "e": ""}
    for key in RESULT_FIELDS:
        if key in msg:
            clean[key] = msg[key]
    return clean


def run_one(req, program, compiled, plan, start, uid, results, step, counts):
    """One child from plan position ``start``; fills ``results``.

    Returns (next start, load info, output, rerun, done, CPU ns): ``rerun`` means a batching
    child died with tests unresolved, so they must run again one by one to learn which test killed
    it; ``done``: the child ended its plan itself; CPU: ``run`` from the fork until every process
    of the run was gone, and for timing ``timed``: from the child's "ready" (before the program
    loads) to SETTLE_S after its last test's result (the exit's own cost left out).
    """
    workdir = "/tmp" if state.SCRATCH_PRIVATE else tempfile.mkdtemp(prefix="cand-", dir=state.WORK_ROOT)
    if uid and not state.SCRATCH_PRIVATE:
        os.chown(workdir, uid, uid)
    out_fd = os.memfd_create("output")
    r, w = os.pipe()
    go_r, go_w = os.pipe()
    fcntl.fcntl(go_w, fcntl.F_SETFL, os.O_NONBLOCK)  # a child that stops reading cannot block us
    oom_before = _oom_kills()
    clock = RunClock()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.close(go_w)
        try:
            child.run_child(req, program, compiled, plan, start, (w, go_r, out_fd), workdir, uid, step, counts)
        finally:
            os._exit(70)
    os.close(w)
    os.close(go_r)
    load_limit = float(req["time_limit"])
    factor = float(req["wall_factor"])

    def current_limit():
        return plan[current][1] if load is not None and current < len(plan) else load_limit

    def go():
        try:
            os.write(go_w, b"g")
        except OSError:
            pass

    current, load, buf, finished, ended_by, ready_at, timed = start, None, b"", False, "crash", 0, 0
    batch = _Batch(plan, results, 0 if step else int(req.get("batch_cpu_ns") or 0))
    deadline = time.monotonic() + factor * current_limit() + 0.5
    cpu_base = 0
    while not finished:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            ended_by = "timeout"
            break
        ready, _, _ = select.select([r], [], [], min(remaining, WATCH_S) if state.CPU_FD >= 0 else remaining)
        if not ready:  # descendants and C calls escape the child's own timer, not the cgroup
            if state.CPU_FD >= 0 and clock.now(pid) - cpu_base > current_limit() * 1e9 + WATCH_SLACK_NS:
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
            if "w" in msg:  # the child waits: its CPU so far is exact
                now = clock.now(pid)
                if load is None and not ready_at and req.get("timing"):
                    ready_at = now
                if req.get("timing") and load is not None and current == len(plan) and not timed:
                    time.sleep(SETTLE_S)  # the child waits: what still runs is its threads and children
                    now = clock.now(pid)
                    timed = now - ready_at
                batch.close(now, bool(msg.get("slow")))
                advanced = True
                go()
            elif "load" in msg and load is None:
                load, advanced = msg, True
                if msg["load"] != "ok":
                    finished = True
                    break
            elif "setup_error" in msg and load is None:  # real (sandbox) or forged: this candidate crashes
                load, finished = {"load": "crash", "detail": "sandbox setup failed: " + str(msg["setup_error"])[:200]}, True
                break
            elif msg.get("i") == current and load is not None and current < len(plan):
                results[current] = _accept(msg, current)
                batch.positions.append(current)
                current, advanced = current + 1, True
            elif "done" in msg and load is not None:  # positions not reported were not run (timeout budget)
                finished = True
                break
        if advanced:
            deadline = time.monotonic() + factor * current_limit() + 0.5
            cpu_base = clock.now(pid)
        if len(buf) > MAX_MESSAGE:
            buf = b""
    os.close(r)
    last = clock.now(pid)
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    isolation.sweep(uid)
    os.close(go_w)
    spent = clock.final(pid, last)  # every process of the run is gone: the counter is exact
    output = os.pread(out_fd, OUTPUT_CAP, 0)
    os.close(out_fd)
    if not state.SCRATCH_PRIVATE:
        shutil.rmtree(workdir, ignore_errors=True)
    run_cpu = {"run": spent, "timed": timed}
    if finished or (load is not None and load["load"] != "ok"):
        batch.close(spent)
        return (len(plan) if load is None or load["load"] != "ok" else current), load, output, False, finished, run_cpu
    if load is None and not step:  # "load ok" may have died in the buffer: find out one by one
        return start, None, output, True, False, run_cpu
    if load is None:  # died or hung while loading the program
        load = {"load": ended_by, "detail": "process ended while loading the program"}
        return len(plan), load, output, False, False, run_cpu
    if not step:
        batch.close(spent)
        return current, load, output, True, False, run_cpu
    detail = f"child {ended_by} during test"
    if ended_by == "crash" and oom_before >= 0 and _oom_kills() > oom_before:
        detail = "killed: memory limit of the run (cgroup)"
    elif ended_by == "timeout":
        over = state.CPU_FD >= 0 and spent - batch.mark > current_limit() * 1e9
        detail = "killed: CPU time of the run's processes exceeded the limit" if over else "killed: wall-clock deadline"
    results[current] = {"i": current, "s": ended_by, "e": detail, "rt": 0}
    batch.positions.append(current)
    batch.close(spent)
    return current + 1, load, output, False, False, run_cpu


@functools.lru_cache(maxsize=8)
def compile_tests(tests):
    """Compiled test list; cached because every candidate of a prompt shares it. A ``parts`` test
    is a list of expressions, each evaluated on its own."""
    compiled: list[tuple] = []
    for kind, src in tests:
        try:
            if kind == "parts":
                compiled.append((kind, [compile(part, "<test>", "eval") for part in json.loads(src)]))
            else:
                compiled.append((kind, compile(src, "<test>", "eval" if kind == "value" else "exec")))
        except (SyntaxError, ValueError, TypeError) as exc:
            compiled.append(("invalid", f"test does not compile: {exc}"))
    return compiled


def _set_run_limits(req):
    """Whole-tree memory and process limits of the run's cgroup (written only when they change)."""
    for fd, value in ((state.MEMORY_FD, int(req["memory_mb"]) * 1024 * 1024), (state.PIDS_FD, PIDS_MAX)):
        if fd >= 0 and _written.get(fd) != value:
            try:
                os.pwrite(fd, str(value).encode(), 0)
                _written[fd] = value
            except OSError:
                pass


_written: dict = {}


def run(req):
    """Run one candidate against its plan of (test index, CPU limit); resume after every crashed
    test; once the stop rule (``child.stop``) holds, the rest is reported as not run."""
    compiled = compile_tests(tuple((t["kind"], t["src"]) for t in req["tests"]))
    limit = float(req["time_limit"])
    plan = (
        [(int(i), float(lim)) for i, lim in req["plan"]]
        if req.get("plan") is not None
        else [(i, limit) for i in range(len(compiled))]
    )
    results: list = [None] * len(plan)
    try:
        program = compile(req["setup"] + "\n" + req["code"], "<candidate>", "exec")
    except (SyntaxError, ValueError) as exc:
        failed = {"load": "error", "detail": f"{type(exc).__name__}: {exc}"}
        return {"results": [{"i": k, "s": "error", "e": failed["detail"]} for k in range(len(plan))], "load": failed, "output": "", "children": 0,
                "run_cpu_ns": 0, "timed_cpu_ns": 0}  # fmt: skip
    _set_run_limits(req)
    start, load, outputs, children, run_cpu, timed_cpu = 0, None, b"", 0, 0, 0
    step = bool(req.get("timing"))
    while start < len(plan):
        streak = 0
        while streak < start and results[start - 1 - streak]["s"] == "timeout":
            streak += 1
        counts = (streak, sum(results[k]["s"] == "timeout" for k in range(start)), start)
        if streak and child.stop(req, *counts):
            break
        start, load_now, output, rerun, done, spent = run_one(
            req, program, compiled, plan, start, state.UID, results, step, counts
        )
        step = bool(req.get("timing")) or rerun
        children += 1
        run_cpu, timed_cpu = run_cpu + spent["run"], timed_cpu + spent["timed"]
        outputs = (outputs + output)[:OUTPUT_CAP]
        load = load or load_now
        if load_now is not None and load_now["load"] != "ok":
            load = load_now
            status = "error" if load_now["load"] == "error" else load_now["load"]
            for k, res in enumerate(results):
                if res is None:
                    results[k] = {"i": k, "s": status, "e": load_now.get("detail", "")}
            break
        if done:
            break
    for k, res in enumerate(results):
        if res is None:
            results[k] = {"i": k, "s": "skipped"}
    return {"results": results, "load": load, "output": outputs.decode("utf-8", "backslashreplace"), "children": children, "run_cpu_ns": run_cpu,
            "timed_cpu_ns": timed_cpu}  # fmt: skip
