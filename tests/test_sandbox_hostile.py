"""Hostile candidates: no false pass, no effect on the host, nothing left running, pool keeps working."""

import os
import socket
import textwrap
import uuid
from pathlib import Path

import pytest

from codedpo_assets.sandbox import run_pass_matrix
from codedpo_assets.sandbox.pool import Pool

LIMIT = 0.5
SECRET = f"s3cret-{uuid.uuid4().hex}"
MARK = f"codedpo-hostile-{uuid.uuid4().hex}"
TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]
ONE = TESTS[:1]  # for programs that hang: each hung test costs a wall-clock deadline


@pytest.fixture(scope="module")
def pool():
    os.environ["CODEDPO_SECRET"] = SECRET  # in our environment, never in the sandbox's
    p = Pool(2)
    yield p
    p.close()


@pytest.fixture(scope="module")
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    yield srv
    srv.close()


def prog(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


# (name, program, tests, statuses allowed for the cells)
HOSTILE = [
    ("fork_bomb", "import os\nwhile True:\n    os.fork()\n", ONE, {"error", "crash", "timeout"}),
    (
        "fork_bomb_in_call",
        "def add(a, b):\n    import os\n    while True:\n        os.fork()\n",
        ONE,
        {"error", "crash", "timeout"},
    ),
    ("memory_bomb", "x = bytearray(10**11)\ndef add(a, b): return a + b\n", TESTS, {"error"}),
    (
        "memory_growth",
        "def add(a, b):\n    l = []\n    while True:\n        l.append(' ' * 10**7)\n",
        ONE,
        {"error", "crash", "timeout"},
    ),
    ("c_level_loop", "def add(a, b):\n    return sum(range(10**12))\n", ONE, {"timeout"}),
    ("python_loop", "def add(a, b):\n    while True:\n        pass\n", ONE, {"timeout"}),
    ("sleep", "def add(a, b):\n    import time\n    time.sleep(100)\n", ONE, {"timeout"}),
    (
        "swallow_timeout",
        prog("""
        def add(a, b):
            try:
                while True:
                    pass
            except BaseException:
                return a + b
        """),
        ONE,
        {"timeout"},
    ),
    (
        "ignore_sigprof",
        prog("""
        import signal
        signal.signal(signal.SIGPROF, signal.SIG_IGN)
        signal.setitimer(signal.ITIMER_PROF, 0)
        def add(a, b):
            while True:
                pass
        """),
        ONE,
        {"timeout", "error"},
    ),
    (
        "network",
        "PORT\ndef add(a, b):\n    import socket\n    s = socket.create_connection(('127.0.0.1', PORT), timeout=1)\n    return a + b\n",
        TESTS,
        {"error"},
    ),
    ("write_outside", "def add(a, b):\n    open(TARGET, 'w').write('x')\n    return a + b\n", TESTS, {"error"}),
    ("write_host_tmp", "def add(a, b):\n    open('/tmp/' + MARKNAME, 'w').write('x')\n    return 0\n", TESTS, {"fail"}),
    (
        "env_secret",
        "def add(a, b):\n    import os\n    return os.environ.get('CODEDPO_SECRET', 'none')\n",
        ["assert add(1, 2) == SECRET"],
        {"fail"},
    ),
    (
        "proc_environ",
        "def add(a, b):\n    return open(f'/proc/{PID}/environ', 'rb').read().decode(errors='replace')\n",
        ["assert add(1, 2) == SECRET"],
        {"error", "fail"},
    ),
    (
        "kill_parent",
        "import os, signal\ndef add(a, b):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return a - b\n",
        TESTS,
        {"error", "fail"},
    ),
    (
        "kill_everything",
        "import os, signal\ndef add(a, b):\n    os.kill(-1, signal.SIGKILL)\n    return a - b\n",
        TESTS,
        {"crash", "error", "fail"},
    ),
    ("sys_exit_0", "import sys\nsys.exit(0)\ndef add(a, b): return a + b\n", TESTS, {"error"}),
    ("sys_exit_in_call", "def add(a, b):\n    import sys\n    sys.exit(0)\n", TESTS, {"error"}),
    ("os_exit_0", "def add(a, b):\n    import os\n    os._exit(0)\n", TESTS, {"crash"}),
    ("os_exit_at_load", "import os\nos._exit(0)\n", TESTS, {"crash"}),
    (
        "redefine_assertion",
        "import builtins\nbuiltins.AssertionError = ZeroDivisionError\ndef add(a, b): return a - b\n",
        ["x = add(1, 2)\nassert x == 3"],
        {"fail"},
    ),
    (
        "rigged_eq",
        "class X:\n    def __eq__(self, o): return True\n    __hash__ = None\ndef add(a, b): return X()\n",
        TESTS,
        {"fail"},
    ),
    ("rigged_int", "class I(int):\n    def __eq__(self, o): return True\ndef add(a, b): return I(0)\n", TESTS, {"fail"}),
    (
        "patch_builtins",
        "import builtins\nbuiltins.type = lambda x: int\nbuiltins.repr = lambda x: '3'\ndef add(a, b): return object()\n",
        TESTS,
        {"fail"},
    ),
    (
        "patch_harness",
        prog("""
        import sys
        h = sys.modules['__main__']
        h._encode = lambda v, d=0: ['s', 'pass']
        h._flush = lambda fd, msgs: h._write(fd, b'{"i": 0, "s": "pass", "t": 0}\\n{"i": 1, "s": "pass", "t": 0}\\n{"done": 1}\\n')
        def add(a, b): return a - b
        """),
        TESTS,
        {"fail", "crash"},
    ),
    (
        "forge_result_pipe",
        prog("""
        import os
        for fd in range(3, 64):
            try:
                os.write(fd, b'{"load": "ok"}\\n{"i": 0, "s": "pass", "t": 0}\\n{"i": 1, "s": "pass", "t": 0}\\n{"done": 1}\\n')
            except OSError:
                pass
        def add(a, b): return a - b
        """),
        TESTS,
        {"fail"},
    ),
    (
        "forge_then_exit",
        prog("""
        import os
        os.write(3, b'{"load": "ok"}\\n{"i": 0, "s": "value", "v": ["s", "3"], "t": 0}\\n{"i": 1, "s": "pass", "t": 0}\\n')
        os._exit(0)
        """),
        TESTS,
        {"crash", "fail"},
    ),
    (
        "forge_nesting_bomb",
        prog("""
        import os
        os.write(3, b'{"load": "ok"}\\n{"i": 0, "s": "value", "v": ' + b'[' * 100000 + b']' * 100000 + b'}\\n')
        def add(a, b): return a - b
        """),
        TESTS,
        {"fail"},
    ),
    (
        "forge_huge_cpu_time",
        prog("""
        import os
        os.write(3, b'{"load": "ok"}\\n{"i": 0, "s": "fail", "t": 100000000000000000000000}\\n')
        def add(a, b): return a - b
        """),
        TESTS,
        {"fail", "crash"},
    ),
    (
        "forge_setup_error",
        prog("""
        import os, time
        os.write(3, b'{"setup_error": "forged"}\\n')
        time.sleep(100)
        """),
        TESTS,
        {"crash"},
    ),
    ("output_flood", "def add(a, b):\n    while True:\n        print('x' * 100000)\n", ONE, {"error", "timeout"}),
    (
        "binary_output",
        "import sys\nsys.stdout.buffer.write(bytes(range(256)) * 1000)\nsys.stdout.flush()\ndef add(a, b): return a - b\n",
        TESTS,
        {"fail"},
    ),
    (
        "deep_recursion",
        "import sys\nsys.setrecursionlimit(10**7)\ndef f(n): return f(n + 1) + 1\ndef add(a, b): return f(0)\n",
        ONE,
        {"crash", "error", "timeout"},
    ),
    ("recursion_error", "def add(a, b): return add(a, b)\n", TESTS, {"error"}),
    ("segfault", "import ctypes\ndef add(a, b): return ctypes.string_at(0)\n", TESTS, {"crash"}),
    (
        "thread_outlives",
        "import threading, time\nthreading.Thread(target=time.sleep, args=(100,)).start()\ndef add(a, b): return a - b\n",
        TESTS,
        {"fail"},
    ),
    (
        "subprocess_outlives",
        "import subprocess\nsubprocess.Popen(['sleep', '97'], start_new_session=True)\ndef add(a, b): return a - b\n",
        TESTS,
        {"fail"},
    ),
    (
        "double_fork_daemon",
        prog("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(100)
            os._exit(0)
        def add(a, b): return a - b
        """),
        TESTS,
        {"fail"},
    ),
    ("input", "def add(a, b): return int(input())\n", TESTS, {"error"}),
    ("setuid_root", "import os\ndef add(a, b):\n    os.setuid(0)\n    return a + b\n", TESTS, {"error"}),
    ("huge_int", "def add(a, b): return 10**10000\n", TESTS, {"fail"}),
    ("unparsable", "def add(a, b) return a + b", TESTS, {"error"}),
]


def _sandbox_processes(pool: Pool) -> list[str]:
    """Processes still running under one of the pool's sandbox uids."""
    uids = {str(z.uid) for z in pool.zygotes}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        uid_line = next((line for line in status.splitlines() if line.startswith("Uid:")), "")
        if set(uid_line.split()[1:]) & uids:
            found.append(pid)
    return found


@pytest.mark.parametrize(("name", "code", "tests", "allowed"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_program(pool, listener, tmp_path, name, code, tests, allowed):
    target = tmp_path / "escaped.txt"
    code = (
        code.replace("PORT\n", f"PORT = {listener.getsockname()[1]}\n")
        .replace("TARGET", repr(str(target)))
        .replace("MARKNAME", repr(MARK))
        .replace("PID", str(os.getpid()))
    )
    tests = [t.replace("SECRET", repr(SECRET)) for t in tests]
    matrix = run_pass_matrix([code], tests, time_limit_s=LIMIT, pool=pool)
    assert not matrix.passed.any(), matrix.status
    assert set(matrix.status.ravel()) <= allowed, (matrix.status, matrix.detail)
    # no effect on the host
    assert not target.exists() and not Path("/tmp", MARK).exists()
    with pytest.raises(BlockingIOError):
        listener.accept()
    assert SECRET not in "".join(matrix.outputs)
    assert len(matrix.outputs[0]) <= 4 * 64 * 1024
    # nothing left behind, and the pool still works
    assert _sandbox_processes(pool) == []
    ok = run_pass_matrix(["def add(a, b):\n    return a + b\n"], TESTS, time_limit_s=LIMIT, pool=pool)
    assert ok.passed.all(), (ok.status, ok.detail)


def test_at_least_thirty_hostile_programs():
    assert len(HOSTILE) >= 30


def test_isolation_is_reported(pool):
    level = pool.isolation
    assert set(level) >= {"network", "filesystem", "uid_drop", "subreaper"}
    if os.geteuid() == 0:  # this project's machines: privileged, namespaces available
        assert level["uid_drop"] is True and "isolated" in level["network"]


def test_no_inherited_descriptors(pool):
    counted = pool.isolation["cpu_accounting"].startswith("cgroup")
    matrix = run_pass_matrix(
        [
            "import os\ndef fds():\n    return sorted(int(f) for f in os.listdir('/proc/self/fd'))\n"
            "def fd4():\n    return os.path.basename(os.readlink('/proc/self/fd/4')), os.open('/proc/self/fd/4', os.O_WRONLY)\n"
        ],
        # stdin, output, output, result pipe, the run's read-only CPU counter (/dev/null without a
        # cgroup), the zygote's "go" pipe, the listdir handle
        ["assert fds() == [0, 1, 2, 3, 4, 5, 6]", "assert fd4()[0] == 'x'"],
        pool=pool,
    )
    assert matrix.passed[0, 0], matrix.detail
    if counted:  # the counter can be read, not reopened for writing (e.g. to move processes)
        assert matrix.status[0, 1] == "error" and (
            "PermissionError" in matrix.detail[0, 1] or "Read-only" in matrix.detail[0, 1]
        ), matrix.detail
