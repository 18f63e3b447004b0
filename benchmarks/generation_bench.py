"""The default CPU engine vs transformers on the embedded SmolLM2-135M: speed and quality, one run.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/generation_bench.py [--samples 4] [--rounds 2]
(figures: docs/benchmarks.md, "Generation engines").

Both engines get the same requests — the pipeline's own solution prompt (chat template, prefilled
code fence, closing fence as the stop string) for 16 small fixed tasks, ``--samples`` each, at the
quick profile's temperature 0.8, <= 256 new tokens — in chunks of one batch that alternate between
the engines, so a busy machine slows both alike. Tokens/s = generated tokens / wall time. Quality:
share of completions that define the entry point (the pipeline's extractor) and share that pass
every test of their task (the product's sandbox), with Wilson intervals and a paired-by-task
bootstrap interval of the difference. The last line:
``generation: <engine> <X> tok/s vs transformers <Y> tok/s = <R>x``.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from codedpo_assets.generation.backends import GenerationParams, Request, TransformersBackend
from codedpo_assets.generation.ct2 import local_backend
from codedpo_assets.generation.embedded import embedded_model_dir
from codedpo_assets.generation.parsing import extract_program
from codedpo_assets.generation.tasks import FENCE, seed_for, solution_messages, task_text
from codedpo_assets.intervals import paired_change_interval, wilson_interval
from codedpo_assets.sandbox import run_pass_matrix

TASKS = [  # (signature, what it must do, tests): small enough that a 135M model sometimes gets them right
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


def requests(samples: int) -> tuple[list[Request], list[int]]:
    """Every task's prompt ``samples`` times, seeded as the pipeline seeds them; and each request's task."""
    jobs = [(solution_messages(task_text(desc, sig)), i, t) for t, (sig, desc, _) in enumerate(TASKS) for i in range(samples)]
    return [Request(m, seed_for(m, i)) for m, i, _ in jobs], [t for _, _, t in jobs]


def entry(task: int) -> str:
    return TASKS[task][0][4 : TASKS[task][0].index("(")]


def judge(texts: list[str], task_of: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per completion: defines the entry point; passes every test of its task (in the sandbox)."""
    programs = [extract_program(text, entry(t), i) for i, (text, t) in enumerate(zip(texts, task_of))]
    defines = np.array([not p.reason for p in programs])
    passes = np.zeros(len(texts), dtype=bool)
    for t, (_, _, tests) in enumerate(TASKS):
        rows = [i for i, task in enumerate(task_of) if task == t and defines[i]]
        if rows:
            matrix = run_pass_matrix([programs[i].text for i in rows], [f"assert {test}" for test in tests], calibration=None)
            passes[rows] = matrix.passed.all(axis=1)
    return defines, passes


def rate(flags: np.ndarray) -> str:
    low, high = wilson_interval(float(flags.sum()), len(flags))
    return f"{100 * flags.mean():5.1f} % [{100 * low:.0f}-{100 * high:.0f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4, help="completions per task per engine and round")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the tasks (different seeds each round)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()
    path = embedded_model_dir()
    engines = {"default": local_backend(path), "transformers": TransformersBackend(path, batch_size=16)}
    name = engines["default"].identity.split(":")[0]
    print(f"model {path.name}; default engine {name}; {len(TASKS)} tasks x {args.samples} samples x {args.rounds} rounds; "
          f"temperature 0.8, <= {args.max_new_tokens} new tokens, stop at the closing fence")  # fmt: skip
    params = GenerationParams(temperature=0.8, max_new_tokens=args.max_new_tokens, stop=(FENCE,))
    base, task_of = requests(args.samples)
    tokens, seconds, texts = dict.fromkeys(engines, 0), dict.fromkeys(engines, 0.0), {k: [] for k in engines}
    for r in range(args.rounds):
        batch = [Request(q.messages, q.seed + r) for q in base]
        for start in range(0, len(batch), 32):  # 32 requests per engine in turn: load swings hit both
            for key, backend in engines.items():
                counted = [0]
                t0 = time.perf_counter()
                texts[key] += backend.generate(
                    batch[start : start + 32], params, lambda _, n, c=counted: c.__setitem__(0, c[0] + n)
                )
                seconds[key] += time.perf_counter() - t0
                tokens[key] += counted[0]
    owner = np.array(task_of * args.rounds)
    judged = {key: judge(texts[key], list(owner)) for key in engines}
    print(f"{'engine':<26}{'tok/s':>8}{'tokens':>8}  {'defines the entry point':<26}{'passes its tests':<24}")
    for key in engines:
        label = name if key == "default" else "transformers fp32"
        print(
            f"{label:<26}{tokens[key] / seconds[key]:8.1f}{tokens[key]:8d}  {rate(judged[key][0]):<26}{rate(judged[key][1]):<24}"
        )
    for what, idx in (("defines", 0), ("passes", 1)):
        per_task = {k: [judged[k][idx][owner == t].mean() for t in range(len(TASKS))] for k in engines}
        low, high = paired_change_interval(per_task["transformers"], per_task["default"])
        diff = np.mean(per_task["default"]) - np.mean(per_task["transformers"])
        print(
            f"difference in '{what}' (default - transformers, paired by task): {100 * diff:+.1f} points [{100 * low:+.1f}, {100 * high:+.1f}]"
        )
    fast, slow = tokens["default"] / seconds["default"], tokens["transformers"] / seconds["transformers"]
    print(f"generation: {name} {fast:.1f} tok/s vs transformers {slow:.1f} tok/s = {fast / slow:.1f}x")


if __name__ == "__main__":
    main()
