"""Candidates that know how the sandbox works: they patch every clock they can reach, or write
result lines themselves. Nothing they write or patch may decide a verdict or a time."""

import textwrap

import pytest

from codedpo_assets.sandbox import Calibration, run_pass_matrix, time_candidates
from codedpo_assets.sandbox.pool import Pool


def prog(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


@pytest.fixture(scope="module")
def one():
    p = Pool(1)
    yield p
    p.close()


# --- clock patching: a slow, correct program that tries to be timed fast ---------------------------

SLOW = "def f(n):\n    s = 0\n    for i in range(n * 400):\n        s += i % 7\n    return s\n"
FAST = "def f(n):\n    s = 0\n    for i in range(n * 25):\n        s += i % 7\n    return s\n"
TIMED = ["assert f(1000) >= 0", "assert f(1001) >= 0", "assert f(1002) >= 0"]  # distinct inputs: no memo helps
_ZERO = "lambda *a, **k: 0"
CLOCK_NAMES = "('time', 'clock', 'cpu', 'ns', 'usage', 'rusage', 'pread', 'ptime', 'mono')"

_PATCH_MODULES = prog(f"""
    import sys
    def _patch_modules():
        for module in list(sys.modules.values()):
            for name, value in list(vars(module).items()):
                if callable(value) and any(k in name.lower() for k in {CLOCK_NAMES}):
                    try:
                        setattr(module, name, {_ZERO})
                    except Exception:
                        pass
    """)

PATCHERS = {
    # the time module's clocks, as the harness might call them
    "time_module": prog(f"""
        import time
        for name in dir(time):
            if callable(getattr(time, name)) and any(k in name for k in ('time', 'clock')):
                setattr(time, name, {_ZERO})
        """),
    # the harness's own module-level callables whose names look like clocks, in every loaded module
    "harness_globals": _PATCH_MODULES + "_patch_modules()\n",
    # a gc walk over every namespace dict, and the frames of whoever called us
    "gc_walk": prog(f"""
        import gc, sys
        for obj in gc.get_objects():
            if isinstance(obj, dict):
                for name, value in list(obj.items()):
                    if isinstance(name, str) and callable(value) and any(k in name.lower() for k in {CLOCK_NAMES}):
                        obj[name] = {_ZERO}
        frame = sys._getframe()
        while frame is not None:
            frame.f_globals.update({{k: {_ZERO} for k, v in list(frame.f_globals.items())
                                     if callable(v) and any(c in k.lower() for c in {CLOCK_NAMES})}})
            frame = frame.f_back
        """),
    # ctypes: no SIGPROF ever (timer disarmed and the signal blocked) and the libc clock replaced for Python
    "ctypes": prog(f"""
        import ctypes, signal, time
        libc = ctypes.CDLL(None)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGPROF])
        class _Timer(ctypes.Structure):
            _fields_ = [("a", ctypes.c_long * 4)]
        libc.setitimer(2, ctypes.byref(_Timer()), None)
        time.thread_time_ns = time.process_time_ns = {_ZERO}
        """),
    # a thread that keeps patching whatever the harness rebinds, for the whole run
    "patching_thread": _PATCH_MODULES
    + prog("""
        import threading, time
        def _keep():
            while True:
                _patch_modules()
                time.sleep(0.0005) if hasattr(time, 'sleep') else None
        threading.Thread(target=_keep, daemon=True).start()
        """),
    # lines on the result channel claiming tiny times (and zygote-only fields)
    "time_lines": prog("""
        import os
        _real = None
        def _claim(k):
            os.write(3, ('{"i": %d, "s": "pass", "rt": 0, "cpu": 0, "bound": 0}\\n' % k).encode())
        """),
}


@pytest.mark.parametrize("name", sorted(PATCHERS))
def test_a_clock_patcher_is_timed_like_the_honest_slow_program(name):
    tamper = PATCHERS[name] + SLOW
    timings = time_candidates([SLOW, tamper, FAST], TIMED, seed=5)
    assert timings[0].all_passed and timings[2].all_passed, timings
    assert timings[1].all_passed, (name, timings[1])  # correct: only its time is in question
    # unprotected, these read 0.000 ms; what is left is machine noise: compare each side's least disturbed sample
    honest, tampered, fast = (min(t.samples_ns) for t in timings)
    assert tampered >= 0.5 * honest, (name, tampered, honest)
    assert fast < honest  # honest fast vs slow still ordered


def test_a_patcher_cannot_escape_its_cpu_limit(one):
    """The ctypes patcher turns its timer off: the zygote's counter still ends the test."""
    looper = PATCHERS["ctypes"] + "def f(n):\n    while True:\n        pass\n"
    m = run_pass_matrix([looper], ["assert f(1) == 1"], pool=one, time_limit_s=0.2, calibration=None)
    assert m.status[0, 0] == "timeout" and not m.passed.any(), (m.status, m.detail)


def test_times_are_the_zygotes_not_the_candidates(one):
    """A line claiming 0 ns changes nothing: per-test and whole-run CPU come from the counter."""
    liar = (
        PATCHERS["time_lines"]
        + "def f(n):\n    _claim(0)\n"
        + "    s = 0\n    for i in range(n * 400):\n        s += i % 7\n    return s\n"
    )
    m = run_pass_matrix([SLOW, liar], TIMED, pool=one, calibration=None, timing=True)
    assert m.passed[0].all() and m.cpu_time_ns[0].min() > 1_000_000, m.cpu_time_ns
    assert m.cpu_time_ns[1].sum() > 0.5 * m.cpu_time_ns[0].sum() and m.timed_cpu_ns[1] > 0.5 * m.timed_cpu_ns[0], (
        m.cpu_time_ns,
        m.timed_cpu_ns,
    )
    assert (m.run_cpu_ns > m.timed_cpu_ns).all()  # the whole run holds the timed part
    assert (m.cpu_bound_ns >= m.cpu_time_ns).all()


def test_a_forged_early_end_of_timing_buys_no_timing():
    """Result lines and a "wait" mark written at load would close the timed window early: the
    lines must hold the right values to pass, which only computing them gives (and that counts)."""
    early = (
        prog("""
        import os
        os.write(3, b'{"load": "ok"}\\n' + b''.join(b'{"i": %d, "s": "value", "v": ["i", "1"]}\\n' % k for k in range(3)) + b'{"w": 1}\\n')
        """)
        + SLOW
    )
    honest, forger = time_candidates([SLOW, early], TIMED, seed=2)
    assert honest.all_passed and forger.samples_ns, honest
    # either its forged values are judged (and fail) or its real run is timed: never a pass timed short
    assert not forger.all_passed or min(forger.samples_ns) >= 0.5 * min(honest.samples_ns), forger


def test_calibrated_limits_ignore_what_candidates_report(one):
    """Limits come from the zygote's batch bounds: a candidate claiming huge times raises none."""
    claimer = prog("""
        import os
        def f(x):
            os.write(3, b'{"i": 0, "s": "fail", "rt": 999999999999}\\n')
            return x * 2
        """)
    honest = "def f(x):\n    return x * 2\n"
    tests = [f"assert f({x}) == {2 * x}" for x in range(6)]
    m = run_pass_matrix(
        [honest, honest.replace("x * 2", "x + x"), honest.replace("x * 2", "2 * x"), claimer],
        tests,
        pool=one,
        calibration=Calibration(),
    )
    assert m.reported_cpu_ns[3, 0] == 999999999999  # the claim is kept, as a diagnostic
    assert (m.limit_ns[m.limit_ns > 0] == 10_000_000).all(), m.limit_ns  # every limit stayed at the probe


# --- result-line forgery: a wrong program that writes well-formed lines itself ---------------------

WRONG = "def add(a, b):\n    return a - b\n"
# one test of each kind: a value check, a split assertion, and a statement that cannot be split
TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4 and add(0, 0) == 0", "assert isinstance(add(1, 1), int) and 1 < add(1, 1) < 3",
         "assert add(3, 4) in (7, 8)", "assert not add(5, 5) != 10", "assert ok(add(1, 2) == 3)"]  # fmt: skip
VERIFIED = [0, 1, 2, 3, 4]
_ALL = "".join(
    f'{{"i": {k}, "s": "pass", "t": 0}}\\n{{"i": {k}, "s": "value", "v": ["B", true]}}\\n{{"i": {k}, "s": "parts", "v": [["i", "3"]]}}\\n'
    for k in range(6)
)

FORGERS = {
    "at_load": f'import os\nos.write(3, b\'{{"load": "ok"}}\\n{_ALL}{{"done": 1}}\\n\')\nos._exit(0)\n' + WRONG,
    "at_load_then_continue": f'import os\nos.write(3, b\'{{"load": "ok"}}\\n{_ALL}\')\n' + WRONG,
    "inside_the_call": "import os\n_k = [0]\ndef add(a, b):\n"
    '    os.write(3, b\'{"i": %d, "s": "pass"}\\n{"i": %d, "s": "value", "v": ["i", "3"]}\\n{"w": 1}\\n\' % (_k[0], _k[0]))\n'
    "    _k[0] += 1\n    os._exit(0)\n",
    "inside_then_return": 'import os\ndef add(a, b):\n    os.write(3, b\'{"i": 0, "s": "pass"}\\n{"i": 1, "s": "pass"}\\n\')\n    return a - b\n',
    "early_end": 'import os\nos.write(3, b\'{"load": "ok"}\\n{"done": 1}\\n\')\n' + WRONG,
    "wait_flood": "import os\nos.write(3, b'{\"w\": 1}\\n' * 20000)\n" + WRONG,
    "setup_error": 'import os\nos.write(3, b\'{"setup_error": "x"}\\n\')\n' + WRONG,
    "go_thief": "import os, threading\nthreading.Thread(target=lambda: [os.read(5, 1) for _ in iter(int, 1)], daemon=True).start()\n"
    + WRONG,
    "eq_rigger": "class _Any(int):\n    def __eq__(s, o): return True\n    def __ne__(s, o): return False\n"
    "    def __lt__(s, o): return True\n    def __gt__(s, o): return True\n    __hash__ = int.__hash__\n"
    "import builtins\nbuiltins.isinstance = lambda *a: True\ndef add(a, b):\n    return _Any(a - b)\n",
}


@pytest.mark.parametrize("calibrated", [False, True])
@pytest.mark.parametrize("name", sorted(FORGERS))
def test_a_forging_wrong_program_passes_no_verified_test(one, name, calibrated):
    m = run_pass_matrix(
        [FORGERS[name], "def add(a, b):\n    return a + b\n"], TESTS, pool=one, calibration=Calibration() if calibrated else None
    )
    assert m.verified.tolist() == [j in VERIFIED for j in range(len(TESTS))]
    assert not m.passed[0, VERIFIED].any(), (name, list(zip(m.status[0], m.detail[0])))
    assert m.passed[1, VERIFIED].all(), m.detail[1]  # the honest program beside it is judged as before
    assert set(m.status[0]) <= {"pass", "fail", "error", "timeout", "crash"}, m.status


def test_split_assertions_are_judged_in_the_parent(one):
    right, wrong = "def add(a, b):\n    return a + b\n", WRONG
    m = run_pass_matrix([right, wrong], [*TESTS[:5], "assert add(1, 1) is None or add(2, 3) == 5", "assert add([1], [2])[0] == 1"],
                        pool=one, calibration=None)  # fmt: skip
    assert m.passed[0].all(), m.detail[0]
    assert not m.passed[1].any() and m.status[1, 6] == "error", list(
        zip(m.status[1], m.detail[1])
    )  # list - list raises, as in Python
    assert m.fingerprint[0, 1] != m.fingerprint[1, 1]  # behaviour differs, and the fingerprint shows it
