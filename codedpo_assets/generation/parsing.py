"""Model output → candidate programs and test statements, with a reason for everything dropped.

Small models write prose, truncated code and duplicates; every sample ends up either as a kept
item or as a drop row with its reason, so SQL shows where a model's output went.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from codedpo_assets.normalize import normalized_hash

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
MAX_OUTPUT_CHARS = 20_000


@dataclass(frozen=True)
class Parsed:
    """One kept item (``text``) or one dropped item (``reason``) from a sample."""

    sample_index: int
    text: str = ""
    norm_hash: str = ""
    reason: str = ""
    detail: str = ""

    @property
    def kept(self) -> bool:
        return not self.reason


def code_blocks(output: str) -> list[str]:
    """Fenced code blocks (python or unlabeled) in order; the whole text when there are none."""
    blocks = [body for lang, body in _FENCE.findall(output) if lang.lower() in ("", "python", "py", "python3")]
    return blocks or [output]


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__name__" in ast.unparse(node.test)


def _is_print(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "print"


def _parse_prefix(text: str) -> ast.Module | None:
    """The longest parsable prefix by whole lines (truncated output often breaks at the end)."""
    lines = text.splitlines()
    for end in range(len(lines), 0, -1):
        try:
            return ast.parse("\n".join(lines[:end]))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return None


def _failure(output: str) -> tuple[str, str] | None:
    if not output.strip():
        return "empty_output", ""
    if len(output) > MAX_OUTPUT_CHARS:
        return "output_too_long", f"{len(output)} chars"
    return None


def extract_program(output: str, entry_point: str, sample_index: int) -> Parsed:
    """A candidate program defining ``entry_point``: imports + defs, no main guard, no prints."""
    failed = _failure(output)
    if failed:
        return Parsed(sample_index, reason=failed[0], detail=failed[1])
    for block in code_blocks(output):
        tree = _parse_prefix(block)
        if tree is None:
            continue
        body = [n for n in tree.body if not _is_main_guard(n) and not _is_print(n)]
        body = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign))]
        if any(isinstance(n, ast.FunctionDef) and n.name == entry_point for n in body):
            module = ast.Module(body=body, type_ignores=[])
            code = ast.unparse(module) + "\n"
            return Parsed(sample_index, code, normalized_hash(module))
    reason = "no_code" if all(_parse_prefix(b) is None for b in code_blocks(output)) else "no_entry_point"
    return Parsed(sample_index, reason=reason, detail=f"no parsable def {entry_point}(...)" if reason == "no_entry_point" else "")


def _calls(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name for n in ast.walk(node))


def extract_tests(output: str, entry_point: str, sample_index: int) -> list[Parsed]:
    """Standalone ``assert`` statements calling ``entry_point`` (kept or with a drop reason)."""
    failed = _failure(output)
    if failed:
        return [Parsed(sample_index, reason=failed[0], detail=failed[1])]
    found: list[Parsed] = []
    for block in code_blocks(output):
        tree = _parse_prefix(block)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Assert):
                continue
            text = ast.unparse(ast.Assert(test=node.test, msg=None))
            test = node.test
            if not _calls(test, entry_point):
                found.append(Parsed(sample_index, text, reason="no_entry_point_call"))
            elif isinstance(test, ast.Compare) and len(test.comparators) == 1 and ast.dump(test.left) == ast.dump(test.comparators[0]):
                found.append(Parsed(sample_index, text, reason="trivial", detail="both sides identical"))
            else:
                found.append(Parsed(sample_index, text, normalized_hash(text)))
    return found or [Parsed(sample_index, reason="no_assert", detail="no assert statement found")]


def dedupe(items: list[Parsed]) -> list[Parsed]:
    """Keep the first of each normalized AST; later copies become ``duplicate`` drops."""
    seen: set[str] = set()
    out = []
    for item in items:
        if item.kept and item.norm_hash in seen:
            out.append(Parsed(item.sample_index, item.text, item.norm_hash, "duplicate"))
        else:
            seen.add(item.norm_hash)
            out.append(item)
    return out
