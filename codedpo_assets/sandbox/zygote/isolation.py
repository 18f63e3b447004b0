"""Zygote isolation: namespaces, a read-only filesystem with private scratch, the run cgroup's
descriptors, and sweeping every process a run left behind.

Set up once at start (``isolate``, ``open_cgroup``); ``wipe_scratch`` and ``sweep`` run after
every candidate run.
"""

import fcntl
import os
import shutil
import signal
import sys
import time

import state
from state import LIBC

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWUSER, CLONE_NEWIPC = 0x00020000, 0x40000000, 0x10000000, 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
SCRATCH_OPTIONS = b"size=64m,nr_inodes=65536,mode=1777"  # a run's scratch space (its pages count as its memory)


def _bind_ro(source, target):
    if LIBC.mount(source.encode(), target.encode(), None, MS_BIND, None) != 0:
        return False
    LIBC.mount(None, target.encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
    return True


def wipe_scratch():
    """Empty the scratch tmpfs mounts (/tmp, /dev/shm) once a run's processes are all gone, so no
    later run sees what it wrote; a new IPC namespace if it left SysV objects or message queues.
    (Emptying costs microseconds; a mount namespace per run cost an RCU grace period per exit.)"""
    for root in state.SCRATCH_ROOTS:
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.path in state.SCRATCH_KEEP:
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
        state.IPC_FRESH = False


def _ipc_objects_left():
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}", "rb") as fh:
                if fh.read().count(b"\n") > 1:  # a header line, then one line per object
                    return True
        except OSError:
            pass
    return bool(state.MQUEUE and os.listdir(state.MQUEUE))


def _mount_mqueue():
    """Show this IPC namespace's POSIX message queues (mq_open needs no mount, so we look here)."""
    mounted = os.path.isdir("/dev/mqueue") and LIBC.mount(b"mqueue", b"/dev/mqueue", b"mqueue", MS_NOSUID | MS_NODEV, None) == 0
    state.MQUEUE = "/dev/mqueue" if mounted else ""


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


def sweep(uid):
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


def _expose_stdlib():
    """Bind the interpreter's library dirs under /tmp so a dropped uid can import from them.

    (They may live under a private home directory, e.g. pyenv in /root; the bind is read-only.
    Runs write to the same tmpfs, emptied after each run: ``wipe_scratch``.)
    """
    for i, path in enumerate(list(sys.path)):
        if not os.path.isdir(path):
            continue
        target = f"/tmp/.python-lib-{i}"
        os.makedirs(target, mode=0o755, exist_ok=True)
        if _bind_ro(path, target):
            state.SCRATCH_KEEP.add(target)
            sys.path[i] = target
    return f"{len(state.SCRATCH_KEEP)} library dirs bound read-only under /tmp"


def open_cgroup(spec):
    """Descriptors on the run cgroup's files, opened before the filesystem turns read-only and
    moved above the descriptors a child rearranges. Returns what CPU accounting this gives."""

    def high(path, flags):
        if not path:
            return -1
        fd = os.open(path, flags)
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 100)
        os.close(fd)
        return moved

    try:
        state.PROCS_FDS = [high(p, os.O_WRONLY) for p in spec.get("procs", [])]
        state.CPU_FD = high(spec.get("cpu"), os.O_RDONLY)
        state.MEMORY_FD = high(spec.get("memory_limit"), os.O_WRONLY)
        state.PIDS_FD = high(spec.get("pids_max"), os.O_WRONLY)
        state.EVENTS_FD = high(spec.get("memory_events"), os.O_RDONLY)
        state.cpu_value(os.pread(state.CPU_FD, 4096, 0))
    except (OSError, ValueError, TypeError) as exc:
        state.PROCS_FDS, state.CPU_FD, state.MEMORY_FD, state.PIDS_FD, state.EVENTS_FD = [], -1, -1, -1, -1
        return f"threads + waited-for children (getrusage; cgroup unusable: {type(exc).__name__})"
    if state.CPU_FD < 0:
        return "threads + waited-for children (getrusage; no cgroup)"
    return f"cgroup {spec.get('kind', '')}: every thread and descendant process".replace("  ", " ")


def isolate():
    """Enter fresh network + mount namespaces where the kernel allows; report what was achieved."""
    level = {"uid_drop": bool(state.UID), "network": "shared", "filesystem": "shared", "subreaper": False}
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
        tmp_ok = LIBC.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, SCRATCH_OPTIONS) == 0
        if (
            tmp_ok
            and os.path.isdir("/dev/shm")
            and LIBC.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV, SCRATCH_OPTIONS) == 0
        ):
            state.SCRATCH_ROOTS.append("/dev/shm")
        state.IPC_FRESH = LIBC.unshare(CLONE_NEWIPC) == 0
        if state.IPC_FRESH:
            _mount_mqueue()
        failed = []
        with open("/proc/self/mountinfo") as fh:
            mounts = [line.split()[4] for line in fh]
        for mountpoint in mounts:
            if mountpoint in state.SCRATCH_ROOTS:
                continue
            if LIBC.mount(None, mountpoint.encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY, None) != 0:
                failed.append(mountpoint)
        if tmp_ok:
            level["stdlib"] = _expose_stdlib()
            state.SCRATCH_PRIVATE = True
        if tmp_ok and not failed:
            level["filesystem"] = "read-only, private /tmp (mount namespace)"
        elif tmp_ok:
            level["filesystem"] = f"private /tmp; still writable: {failed[:5]}"
    level["subreaper"] = LIBC.prctl(state.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    return level


def scratch_level():
    if state.SCRATCH_PRIVATE:
        return "private per run: /tmp and /dev/shm (cwd, HOME, TMPDIR) are this zygote's own tmpfs, emptied after every run" + (
            "; fresh IPC namespace whenever a run leaves SysV objects or message queues" if state.IPC_FRESH else ""
        )
    return "per run: working directory, HOME and TMPDIR only; /tmp is shared (no mount namespace)"


def timer_delay():
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
