"""Generation on the embedded model, the engine and prompts before vs after issue 33, side by side.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generation_bench.py [--tasks 16] [--samples 4] [--rounds 1]
(figures: docs/benchmarks.md, "Generation engines").

Both arms sample the same tasks — ``--samples`` solutions and ``--samples`` test sets each (the
pipeline's N + M), at the quick profile's temperature 0.8 and token limit — on the default engine
(CTranslate2 int8, one single-threaded replica per core), in alternating chunks so a busy machine
slows both alike:

- **old**: the solution and test prompts written for SmolLM2 (an open code block, nothing more),
  stopping only at the closing fence;
- **new**: the product's prompts (the function alone: no docstring, comments, examples) and its stop
  strings (a top-level comment or call after the function ends the reply).

(A scheduler that hands each replica its whole queue instead of rounds of one batch per replica
was tried and dropped: the same requests took the same wall time — 75 s vs 74–78 s for 96 replies —
and a request's draws then depended on the lengths of the requests before it.)

Per arm: tokens/s (generated tokens / wall time), tokens per reply, the share of solutions that
parse into a program and pass their task's tests (the product's sandbox; Wilson intervals), test
replies that yield a kept assert, and the seconds one task's N + M samples cost. The last line:
``generation: new <X> tok/s, <S> s per task (N+M) vs old <Y> tok/s, <T> s``. Seconds per task is
the figure that counts: tok/s alone rewards longer replies.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from codedpo_assets.generation.backends import GenerationParams, Request
from codedpo_assets.generation.ct2 import CTranslate2Backend
from codedpo_assets.generation.embedded import embedded_model_dir
from codedpo_assets.generation.parsing import extract_program, extract_tests
from codedpo_assets.generation.tasks import FENCE, PROGRAM_STOP, SYSTEM, TEST_STOP, seed_for, solution_messages, task_text
from codedpo_assets.generation.tasks import test_messages as new_test_messages
from codedpo_assets.intervals import wilson_interval
from codedpo_assets.sandbox import run_pass_matrix

TASKS = [  # (signature, what it must do, tests): small functions with known answers
    ("def add(a, b):", "Return the sum of two integers a and b.", ["add(2, 3) == 5", "add(-1, 1) == 0"]),
    ("def square(n):", "Return n multiplied by itself.", ["square(4) == 16", "square(-3) == 9"]),
    ("def is_even(n):", "Return True when the integer n is even, else False.", ["is_even(4) is True", "is_even(7) is False"]),
    ("def maximum(a, b):", "Return the larger of two numbers.", ["maximum(3, 9) == 9", "maximum(5, -2) == 5"]),
    ("def reverse_string(s):", "Return the string s reversed.", ["reverse_string('abc') == 'cba'", "reverse_string('') == ''"]),
    ("def list_sum(xs):", "Return the sum of a list of numbers.", ["list_sum([1, 2, 3]) == 6", "list_sum([]) == 0"]),
    ("def factorial(n):", "Return n! for a non-negative integer n.", ["factorial(0) == 1", "factorial(5) == 120"]),
    (
        "def count_vowels(s):",
        "Return how many vowels (a, e, i, o, u) the lowercase string s holds.",
        ["count_vowels('hello') == 2", "count_vowels('xyz') == 0"],
    ),
    (
        "def is_palindrome(s):",
        "Return True when the string s reads the same backwards.",
        ["is_palindrome('racecar') is True", "is_palindrome('ab') is False"],
    ),
    (
        "def first_element(xs):",
        "Return the first element of a non-empty list.",
        ["first_element([7, 8]) == 7", "first_element(['a']) == 'a'"],
    ),
    (
        "def fibonacci(n):",
        "Return the n-th Fibonacci number, with fibonacci(0) == 0 and fibonacci(1) == 1.",
        ["fibonacci(0) == 0", "fibonacci(10) == 55"],
    ),
    (
        "def celsius_to_fahrenheit(c):",
        "Convert a temperature from Celsius to Fahrenheit.",
        ["celsius_to_fahrenheit(0) == 32", "celsius_to_fahrenheit(100) == 212"],
    ),
    (
        "def average(xs):",
        "Return the arithmetic mean of a non-empty list of numbers.",
        ["average([1, 2, 3]) == 2", "average([4]) == 4"],
    ),
    (
        "def count_words(s):",
        "Return the number of words in the string s, words being separated by spaces.",
        ["count_words('a b c') == 3", "count_words('hello') == 1"],
    ),
    ("def absolute(n):", "Return the absolute value of the number n.", ["absolute(-5) == 5", "absolute(3) == 3"]),
    (
        "def unique_sorted(xs):",
        "Return the distinct elements of the list xs in ascending order.",
        ["unique_sorted([3, 1, 3, 2]) == [1, 2, 3]", "unique_sorted([]) == []"],
    ),
]


def old_solution_messages(task: str) -> list[dict[str, str]]:
    """The solution prompt before issue 33 (written for SmolLM2-135M)."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": task + "\nReply with one ```python code block containing the complete function."},
        {"role": "assistant", "content": f"{FENCE}python\n"},
    ]


def old_test_messages(task: str, entry_point: str) -> list[dict[str, str]]:
    """The test prompt before issue 33."""
    ask = (f"\nWrite 5 test cases for `{entry_point}`, each a single line of the form "
           f"`assert {entry_point}(<arguments>) == <expected literal value>`. Reply with one ```python code block.")  # fmt: skip
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": task + ask},
        {"role": "assistant", "content": f"{FENCE}python\nassert {entry_point}("},
    ]


ARMS = {  # name: (solution prompt, test prompt, solution stop, test stop)
    "old": (old_solution_messages, old_test_messages, (FENCE,), (FENCE,)),
    "new": (solution_messages, new_test_messages, PROGRAM_STOP, TEST_STOP),
}


def entry(task: int) -> str:
    return TASKS[task][0][4 : TASKS[task][0].index("(")]


def jobs(arm: str, tasks: int, samples: int, round_: int) -> tuple[list[Request], list[Request]]:
    """The arm's solution and test requests: every task ``samples`` times each, seeded as the pipeline seeds."""
    solve, test, _, _ = ARMS[arm]
    sol, tst = [], []
    for t, (sig, desc, _) in enumerate(TASKS[:tasks]):
        for i in range(samples):
            m = solve(task_text(desc, sig))
            sol.append(Request(m, seed_for(m, i) + round_))
            m = test(task_text(desc, sig), entry(t))
            tst.append(Request(m, seed_for(m, i) + round_))
    return sol, tst


def passes(texts: list[str], owner: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per solution: parses into a program defining the entry point; passes every test of its task."""
    programs = [extract_program(text, entry(t), i) for i, (text, t) in enumerate(zip(texts, owner))]
    parsed = np.array([not p.reason for p in programs])
    ok = np.zeros(len(texts), dtype=bool)
    for t in sorted(set(owner)):
        rows = [i for i, task in enumerate(owner) if task == t and parsed[i]]
        if rows:
            matrix = run_pass_matrix([programs[i].text for i in rows], [f"assert {x}" for x in TASKS[t][2]], calibration=None)
            ok[rows] = matrix.passed.all(axis=1)
    return parsed, ok


def rate(flags: np.ndarray) -> str:
    low, high = wilson_interval(float(flags.sum()), len(flags))
    return f"{100 * flags.mean():5.1f} % [{100 * low:.0f}-{100 * high:.0f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=len(TASKS), help=f"tasks to sample (<= {len(TASKS)})")
    parser.add_argument("--samples", type=int, default=4, help="N solutions and M test sets per task")
    parser.add_argument("--rounds", type=int, default=1, help="passes over the tasks (other seeds each round)")
    parser.add_argument("--max-new-tokens", type=int, default=160, help="the quick profile's limit")
    args = parser.parse_args()
    path = embedded_model_dir()
    engine = CTranslate2Backend(path)
    print(f"model {path.name}; engine {engine.identity.split(':')[0]}; {args.tasks} tasks x ({args.samples} solutions + "
          f"{args.samples} test sets) x {args.rounds} rounds; temperature 0.8, <= {args.max_new_tokens} new tokens")  # fmt: skip
    tokens, seconds = dict.fromkeys(ARMS, 0), dict.fromkeys(ARMS, 0.0)
    sols: dict[str, list[str]] = {a: [] for a in ARMS}
    tests: dict[str, list[str]] = {a: [] for a in ARMS}
    for r in range(args.rounds):
        for kind in ("solutions", "tests"):  # each kind of request for both arms in turn: load swings hit both
            for arm, (_, _, sol_stop, test_stop) in ARMS.items():
                sol, tst = jobs(arm, args.tasks, args.samples, r)
                batch, stop, out = (sol, sol_stop, sols) if kind == "solutions" else (tst, test_stop, tests)
                counted = [0]
                t0 = time.perf_counter()
                params = GenerationParams(temperature=0.8, max_new_tokens=args.max_new_tokens, stop=stop)
                out[arm] += engine.generate(batch, params, lambda _, n, c=counted: c.__setitem__(0, c[0] + n))
                seconds[arm] += time.perf_counter() - t0
                tokens[arm] += counted[0]
    owner = [t for _ in range(args.rounds) for t in range(args.tasks) for _ in range(args.samples)]
    print(
        f"{'arm':<5}{'tok/s':>7}{'tok/reply':>10}{'s/task':>8}  {'solutions parse':<22}{'solutions pass':<22}{'test replies with an assert':<26}"
    )
    per_task = {}
    for arm in ARMS:
        parsed, ok = passes(sols[arm], owner)
        asserted = np.array([any(not x.reason for x in extract_tests(t, entry(o), 0)) for t, o in zip(tests[arm], owner)])
        replies = len(sols[arm]) + len(tests[arm])
        per_task[arm] = seconds[arm] / (args.tasks * args.rounds)
        print(f"{arm:<5}{tokens[arm] / seconds[arm]:7.1f}{tokens[arm] / replies:10.1f}{per_task[arm]:8.1f}  "
              f"{rate(parsed):<22}{rate(ok):<22}{rate(asserted):<26}")  # fmt: skip
    new, old = (tokens[a] / seconds[a] for a in ("new", "old"))
    print(
        f"generation: new {new:.1f} tok/s, {per_task['new']:.1f} s per task (N+M) vs old {old:.1f} tok/s, {per_task['old']:.1f} s"
    )


if __name__ == "__main__":
    main()
