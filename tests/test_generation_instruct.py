"""Prompts and parsing for a real instruct model (the embedded Qwen2.5-Coder): its chat template, the
stops that end a reply once it has said what it is for, and its answers as it writes them."""

from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from codedpo_assets.generation import tasks
from codedpo_assets.generation.backends import chat_prompt, cut_at_stop
from codedpo_assets.generation.parsing import extract_program, extract_tests
from codedpo_assets.generation.tasks import (
    PROGRAM_STOP,
    SYSTEM,
    TASK_STOP,
    solution_messages,
    task_messages,
    task_statement,
)

TEMPLATE = (Path(__file__).parent / "fixtures" / "qwen2.5-chat-template.jinja").read_text()  # Apache-2.0, from the model's GGUF


@pytest.fixture(scope="module")
def qwen_tokenizer(tiny_model_dir):
    tok = PreTrainedTokenizerFast.from_pretrained(tiny_model_dir)
    tok.chat_template = TEMPLATE
    return tok


def test_solution_prompt_is_chatml_with_an_open_code_block(qwen_tokenizer):
    text = chat_prompt(qwen_tokenizer, solution_messages("Return the sum of a and b.\n\nImplement `def add(a, b):`."))
    assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nReturn the sum")
    assert "no docstring" in text
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n```python\n")  # continued, not closed


def test_test_prompt_prefills_the_first_assert(qwen_tokenizer):
    text = chat_prompt(qwen_tokenizer, tasks.test_messages("Return the sum.", "add"))
    assert text.endswith("<|im_start|>assistant\n```python\nassert add(") and text.count("<|im_end|>") == 2


def test_task_prompt_asks_for_a_statement_only(qwen_tokenizer):
    text = chat_prompt(qwen_tokenizer, task_messages("def f(x):\n    return x + 1\n", "def f(x):"))
    assert text.endswith("<|im_start|>assistant\n") and "no solution" in text and "def f(x):" in text


QWEN_TASK = """Problem: You are given the current year and a month number; return the (year, month) of the previous month.

Example: For input year=2023 and month=4, the output should be `(2023, 3)`.

### Explanation:

1. **Parameters**:
   - `year`: An integer."""


def test_task_reply_ends_before_its_explanation():
    statement = cut_at_stop(QWEN_TASK, TASK_STOP)
    assert statement.endswith("`(2023, 3)`.\n") and "Explanation" not in statement
    assert task_statement(statement)[2] is None  # kept: a statement with an example, no code


# What the model writes after the prefilled ```python line.
QWEN_PROGRAM = '''import math

def _prevmonth(year, month):
    """Return the previous (year, month).

    >>> _prevmonth(2023, 1)
    (2022, 12)
    """
    if month == 1:
        return (year - 1, 12)
    return (year, _minus(month))

def _minus(m):
    return m - 1

# Example call:
print(_prevmonth(2023, 4))  # Output: (2023, 3)
```
This function handles January separately.'''


def test_program_reply_is_cut_after_the_function_and_keeps_its_helper():
    reply = "```python\n" + cut_at_stop(QWEN_PROGRAM, PROGRAM_STOP)  # the prefill, then the reply up to its stop
    assert reply.rstrip().endswith("return m - 1") and "print(" not in reply
    program = extract_program(reply, "_prevmonth", 0)
    assert program.kept and "def _minus(m)" in program.text and "import math" in program.text
    namespace: dict = {}
    exec(program.text, namespace)
    assert namespace["_prevmonth"](2023, 1) == (2022, 12) and namespace["_prevmonth"](2023, 4) == (2023, 3)


def test_unprefilled_reply_with_prose_around_several_blocks():
    reply = (
        "Here is a helper first:\n```python\ndef helper(x):\n    return x * 2\n```\n"
        "And the function:\n```python\ndef double_all(xs):\n    return [helper(x) for x in xs]\n\n"
        "def helper(x):\n    return x * 2\n```\nIt doubles every element."
    )
    program = extract_program(reply, "double_all", 0)
    assert program.kept and program.text.count("def ") == 2 and "It doubles" not in program.text


def test_truncated_program_keeps_what_parses_and_says_why_when_nothing_does():
    truncated = "def f(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total\n\ndef g(y):\n    if y >"
    assert extract_program(truncated, "f", 0).kept
    assert extract_program("I cannot write that function.", "f", 0).reason == "no_code"
    assert extract_program("```python\ndef other():\n    pass\n```", "f", 0).reason == "no_entry_point"


def test_test_reply_as_qwen_writes_it():
    reply = (
        "assert _prevmonth(2023, 4) == (2023, 3)\nassert _prevmonth(2024, 1) == (2023, 12)\n"
        "# edge case: December\nassert _prevmonth(2021, 12) == (2021, 11)\nprint('All tests passed!')\n"
        "assert _prevmonth(2020, 5) == _prevmonth(2020, 5)\nassert len([1]) == 1"
    )
    tests = extract_tests(reply, "_prevmonth", 0)
    kept = [t.text for t in tests if t.kept]
    assert kept == [
        "assert _prevmonth(2023, 4) == (2023, 3)",
        "assert _prevmonth(2024, 1) == (2023, 12)",
        "assert _prevmonth(2021, 12) == (2021, 11)",
    ]
    assert sorted(t.reason for t in tests if not t.kept) == ["no_entry_point_call", "trivial"]


def test_a_capped_profile_takes_public_seeds_first(tmp_path):
    from codedpo_assets.assets.generation import Sampling, task_jobs
    from codedpo_assets.store import Store

    db = Store(tmp_path / "db.duckdb")
    names = ["_helper", "area", "_inner", "perimeter"]
    rows = [{"partition_key": "p", "seed_id": f"s{i}", "source": "t", "source_kind": "directory", "path": "m.py", "symbol": name,
             "code": f"def {name}(x):\n    return x\n", "n_lines": 2, "content_hash": f"c{i}", "norm_hash": f"n{i}", "unit_hash": "u",
             "contamination": 0.0} for i, name in enumerate(names)]  # fmt: skip
    db.replace_partition("p", {"seeds": rows})
    seeds, sigs, jobs = task_jobs(db, "p", Sampling(0.8, 1.0, 160, 3, 4))
    assert [symbol for _, symbol, _ in seeds] == ["area", "perimeter", "_helper"] and len(jobs) == 3
    assert sigs[0] == "def area(x):"
