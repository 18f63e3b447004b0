"""Prompts (OSS-Instruct style) and the cached generation step shared by the generation assets."""

from __future__ import annotations

import ast
import copy
import hashlib
import re
from collections.abc import Callable, Sequence

import polars as pl

from codedpo_assets.generation.backends import Backend, GenerationParams, Messages, Request
from codedpo_assets.store import Store

SYSTEM = "You are a careful Python programmer."


def signature(seed_code: str, symbol: str) -> str:
    """``def symbol(args):`` of the seed function: the entry point every task keeps."""
    for node in ast.parse(seed_code).body:
        if isinstance(node, ast.FunctionDef) and node.name == symbol:
            stub = copy.copy(node)
            stub.body, stub.decorator_list = [ast.Pass()], []
            return ast.unparse(stub).splitlines()[0]
    raise ValueError(f"seed has no function {symbol!r}")


def task_messages(seed_code: str, sig: str) -> Messages:
    """An instruct model answers "write a problem" with a solution and an explanation unless told
    not to; a statement with one example call gives the solver and the test writer the same contract."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": (
            "Here is a code snippet from an open-source project:\n```python\n" + seed_code.strip() + "\n```\n"
            f"Write a short, self-contained programming problem that asks for a Python function `{sig}` "
            "doing what this code does. State what it must return for which inputs, then give one example "
            "call with its exact result. Write only the problem statement, in at most 120 words: no code "
            "block, no solution, no explanation of how to solve it."
        )},
    ]  # fmt: skip


def task_text(description: str, sig: str) -> str:
    return description.strip() + f"\n\nImplement the function `{sig}` in Python."


_FENCED = re.compile(r"```[^\n]*\n.*?(?:```|\Z)", re.S)
_DEF = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+(\w+)[ \t]*\(", re.M)
MIN_STATEMENT_WORDS = 8  # fewer words left once the code is out: no task statement, only a solution


def task_statement(description: str) -> tuple[str, str | None, str | None]:
    """The model's task text without code that defines functions: a statement that carries an
    implementation (often a wrong one) teaches the solver to copy it, and its tests to agree with it.
    Fenced blocks holding a ``def`` and bare ``def`` blocks are cut. Returns (statement, what was
    cut or None, drop reason or None: ``solution_in_prompt`` when too little statement is left)."""
    names: list[str] = []

    def cut_block(match: re.Match) -> str:
        found = _DEF.findall(match.group(0))
        names.extend(name for _, name in found)
        return "" if found else match.group(0)

    text = _FENCED.sub(cut_block, description)
    kept, body_indent = [], None
    for line in text.splitlines():
        head = _DEF.match(line)
        if head:
            names.append(head.group(2))
            body_indent = len(head.group(1).expandtabs())
            continue
        if body_indent is not None and (not line.strip() or len(line) - len(line.lstrip()) > body_indent):
            continue  # the body of a cut function
        body_indent = None
        kept.append(line)
    statement = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    if not names:
        return statement, None, None
    cut = f"code defining {', '.join(dict.fromkeys(names))}"
    return statement, cut, "solution_in_prompt" if len(statement.split()) < MIN_STATEMENT_WORDS else None


FENCE = "```"  # replies are prefilled up to inside a code block, so generation stops at the closing fence
# Where a reply has said what it is for. An instruct model's problem statement runs on into headed
# sections that explain a solution; its code runs on past the function into example calls.
TASK_STOP = ("\n#", "\nExplanation", "\n**")
PROGRAM_STOP = (FENCE, "\n# ", "\nprint(", "\nif __name__")  # a top-level comment or call: the function is done
TEST_STOP = (FENCE,)


def solution_messages(task: str) -> Messages:
    """Ends with an assistant prefill (an open code block): the reply is code and ends at the closing
    fence. Docstrings and doctests cost an instruct model half its tokens and add nothing the sandbox
    judges, so it is asked for the function alone."""
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": task + "\nReply with one ```python code block containing only the complete function "
            "(and the imports it needs, from the Python standard library only): no docstring, no comments, "
            "no examples, no explanation.",
        },
        {"role": "assistant", "content": f"{FENCE}python\n"},
    ]


def test_messages(task: str, entry_point: str) -> Messages:
    """Tests that call other functions of the seed's module (or import packages) only error."""
    ask = (
        f"\nWrite 5 test cases for `{entry_point}`, each a single line of the form "
        f"`assert {entry_point}(<literal arguments>) == <expected literal value>`, calling no other function, "
        "where the expected value is exactly what a correct implementation returns. "
        "Reply with one ```python code block of asserts only."
    )
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": task + ask},
        {"role": "assistant", "content": f"{FENCE}python\nassert {entry_point}("},
    ]


def cache_key(model: str, params: GenerationParams, messages: Messages, sample_index: int) -> str:
    text = repr((model, params.key(), messages, sample_index))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def seed_for(messages: Messages, sample_index: int) -> int:
    return int(hashlib.sha256(repr((messages, sample_index)).encode()).hexdigest()[:8], 16)


def generate_cached(
    store: Store,
    backend: Backend,
    jobs: Sequence[tuple[Messages, int]],
    params: GenerationParams,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[str], int]:
    """Completions for (messages, sample index) jobs; cached by (model, params, prompt, index).

    Returns (texts, model calls made); ``progress(done, new tokens)`` counts over all jobs, cached
    ones first. Unchanged work costs zero model calls. The database is
    touched only briefly before and after generating, never during.
    """
    keys = [cache_key(backend.identity, params, m, i) for m, i in jobs]
    found = dict(store.query("SELECT cache_key, text FROM generation_cache WHERE cache_key IN (SELECT unnest(?))", [keys]).rows())
    missing = [j for j, k in enumerate(keys) if k not in found]
    cached = len(jobs) - len(missing)
    if progress:  # counts run over all jobs: the cached ones are done before the model starts
        progress(cached, 0)
    if missing:
        report = (lambda done, tokens: progress(cached + done, tokens)) if progress else None
        texts = backend.generate([Request(jobs[j][0], seed_for(*jobs[j])) for j in missing], params, report)
        rows = [
            {"cache_key": keys[j], "model": backend.identity, "params": params.key(), "sample_index": jobs[j][1],
             "prompt": repr(jobs[j][0]), "text": t}
            for j, t in zip(missing, texts)
        ]  # fmt: skip

        def write(conn) -> None:  # keys stay unique without a constraint (DuckLake has none): skip the ones present
            conn.register("_incoming", pl.DataFrame(rows))
            conn.execute("INSERT INTO generation_cache BY NAME SELECT DISTINCT ON (cache_key) * FROM _incoming "
                         "WHERE cache_key NOT IN (SELECT cache_key FROM generation_cache)")  # fmt: skip
            conn.unregister("_incoming")

        store.retrying(write)
        found.update({keys[j]: t for j, t in zip(missing, texts)})
    return [found[k] for k in keys], len(missing)
