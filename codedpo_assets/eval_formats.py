"""HumanEval prompt formats: how a model is asked, where its reply stops, and what program it made.

A format is chosen per model from a measured table (docs/benchmarks.md "Evaluation prompt
formats"; ``benchmarks/eval_formats.py``): SmolLM2-135M closes a block prefilled with the signature
at once (82 % of replies empty, 1 % define the function), so such a table measures the format, not
the model. Every
completion is also classified — empty, defines no entry point with a body — so such replies are
counted and shown, never silently scored as wrong code.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

from codedpo_assets.generation.backends import COMPLETION_ROLE, Messages
from codedpo_assets.generation.parsing import extract_program
from codedpo_assets.generation.tasks import FENCE, SYSTEM, solution_messages

# HumanEval's usual stop sequences: the function ends where the next top-level statement starts.
BODY_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert ")
OPEN = f"{FENCE}python\n"


def header(problem: dict) -> str:
    """The problem's prompt before its entry point's ``def``: imports and helper functions."""
    return problem["prompt"][: problem["prompt"].index(f"def {problem['entry_point']}(")]


def task(problem: dict) -> str:
    """The problem as a task in the pipeline's own words: ``solution_messages(task(p))`` is the prompt
    the generator samples and training moves (``training.chat_example``)."""
    return f"Write the Python function `{problem['entry_point']}` described below.\n{OPEN}{problem['prompt']}{FENCE}"


@dataclass(frozen=True)
class PromptFormat:
    """``messages(problem)``: the request; ``stop``: where the reply ends; ``program(problem, text)``:
    the program the reply makes (the backend returns any prefill + the continuation)."""

    name: str
    messages: Callable[[dict], Messages]
    stop: tuple[str, ...]
    program: Callable[[dict, str], str]
    generated: Callable[[dict, str], str]  # the part the model wrote (prefill removed)


def _after_prefill(prefill: Callable[[dict], str]) -> Callable[[dict, str], str]:
    return lambda problem, text: text[len(prefill(problem)) :] if text.startswith(prefill(problem)) else text


def _continuation(problem: dict, text: str) -> str:
    """Signature formats: the prompt (signature + docstring) and what the model wrote after it."""
    return text[len(OPEN) :] if text.startswith(OPEN) else problem["prompt"] + text


def _whole_function(problem: dict, text: str) -> str:
    """Chat formats: the problem's imports and helpers, then the function the reply defines ('' if none)."""
    parsed = extract_program(text, problem["entry_point"], 0)
    return header(problem) + parsed.text if not parsed.reason else ""


def _signature_prefill(problem: dict) -> str:
    return OPEN + problem["prompt"]


FORMATS = {
    f.name: f
    for f in (
        PromptFormat(
            "prefilled_signature",  # the reply continues the signature + docstring inside an open block
            lambda p: [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Complete this Python function:\n{OPEN}{p['prompt']}{FENCE}"},
                {"role": "assistant", "content": _signature_prefill(p)},
            ],
            (FENCE, *BODY_STOP),
            _continuation,
            _after_prefill(_signature_prefill),
        ),
        PromptFormat(
            "chat_function",  # the pipeline's solution prompt asking for the whole function; the reply opens a code block
            lambda p: solution_messages(task(p)),
            (FENCE,),
            _whole_function,
            _after_prefill(lambda p: OPEN),
        ),
        PromptFormat(
            "bare_completion",  # no chat template: the model continues the prompt (the original HumanEval setup)
            lambda p: [{"role": COMPLETION_ROLE, "content": p["prompt"]}],
            BODY_STOP,
            _continuation,
            lambda p, t: t,
        ),
    )
}
DEFAULT_FORMAT = "chat_function"  # chosen from the measured table (docs/benchmarks.md "Evaluation prompt formats")


def defines_entry_point(program: str, entry_point: str) -> bool:
    """The program parses and defines ``entry_point`` with a body beyond a docstring, ``pass`` or ``...``."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point:
            body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
            return any(not isinstance(s, ast.Pass) for s in body)
    return False
