"""What the zygote learned about its machine at start, shared by its modules (set once, then read).

Also the wire constants of the child protocol. Imported by name (``import state``): the zygote
runs as its own interpreter with only its own directory on ``sys.path``.
"""

import ctypes

LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38
SAFE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}

# the child's descriptors: 0 /dev/null, 1-2 its output, then these
RESULT_FD = 3  # child → zygote: one JSON line per message
USAGE_FD = 4  # read-only handle on the run cgroup's CPU counter (the child's own CPU limit)
GO_FD = 5  # zygote → child: one byte per "go on" after the zygote has read its counter

UID = 0  # the sandbox uid children drop to (0: not root, no drop)
ZYGOTE_PID = 0
WORK_ROOT = "/tmp"
DEVNULL_FD = 0
SCRATCH_PRIVATE = False  # /tmp (and /dev/shm) are tmpfs mounts of our own, wiped after every run
SCRATCH_ROOTS = ["/tmp"]
SCRATCH_KEEP: set[str] = set()  # the zygote's own entries in /tmp: library binds, its work root
IPC_FRESH, MQUEUE = False, ""
TIMER_EARLY_S = 0.0  # how much earlier than its limit a test's CPU timer is armed (measured at start)
PROCS_FDS: list[int] = []
CPU_FD, MEMORY_FD, PIDS_FD, EVENTS_FD = -1, -1, -1, -1


def cpu_value(data):
    """cgroup v1 ``cpuacct.usage`` holds nanoseconds; cgroup v2 ``cpu.stat`` a ``usage_usec`` line."""
    if data[:11] == b"usage_usec ":
        return int(data[11 : data.index(b"\n")]) * 1000
    return int(data)
