"""Model output → candidate programs and test statements, with a reason for everything dropped.

Small models write prose, truncated code and duplicates; every sample ends up either as a kept
item or as a drop row with its reason, so SQL shows where a model's output went.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, replace

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
    multiplicity: int = 0  # kept items after ``dedupe``: how many samples produced this item

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


def _defined(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _used(nodes: list[ast.stmt]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _without_run_on(body: list[ast.stmt], entry_point: str) -> list[ast.stmt]:
    """Everything up to the entry point's def, and after it only what the kept code uses (a helper
    written below it). Real samples run on into the model's next file: trailing imports of
    modules that are not installed, other functions, assignments; kept, they fail or shadow it."""
    end = next(i for i, n in enumerate(body) if isinstance(n, ast.FunctionDef) and n.name == entry_point) + 1
    kept, rest = body[:end], body[end:]
    used, chosen = _used(kept), set()
    while new := {i for i, n in enumerate(rest) if i not in chosen and _defined(n) & used}:
        chosen |= new
        used |= _used([rest[i] for i in new])
    return kept + [n for i, n in enumerate(rest) if i in chosen]


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
            module = ast.Module(body=_without_run_on(body, entry_point), type_ignores=[])
            code = ast.unparse(module) + "\n"
            return Parsed(sample_index, code, normalized_hash(module))
    reason = "no_code" if all(_parse_prefix(b) is None for b in code_blocks(output)) else "no_entry_point"
    return Parsed(sample_index, reason=reason, detail=f"no parsable def {entry_point}(...)" if reason == "no_entry_point" else "")


def _calls(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name for n in ast.walk(node))


_BARE_ASSERT = re.compile(r"^([ \t]*)assert[ \t]*\n[ \t]*(?!assert\b)(?=\S)", re.MULTILINE)
_CONTINUES = (" ", "\t", ")", "]", "}")  # a line starting so belongs to the statement above
MAX_STATEMENT_LINES = 60


def _statements(text: str) -> list[ast.stmt]:
    """Every complete top-level statement of ``text``, skipping lines that never parse (prose,
    placeholders, a truncated last statement): real samples break off and mix tests with junk, so
    one bad line must not hide the statements after it."""
    lines = _BARE_ASSERT.sub(r"\1assert ", text).splitlines()  # `assert` alone, its expression below
    found: list[ast.stmt] = []
    start = 0
    while start < len(lines):
        if not lines[start].strip():
            start += 1
            continue
        if lines[start].startswith(_CONTINUES):  # a stray indented line: perhaps a statement of its own
            found.extend(_parse(lines[start].strip()))
            start += 1
            continue
        shortest: tuple[int, list[ast.stmt]] | None = None  # the statement may have lost its indented tail (truncation, prose)
        for end in range(start + 1, min(len(lines), start + MAX_STATEMENT_LINES) + 1):
            body = _parse("\n".join(lines[start:end]))
            if body and (end == len(lines) or not lines[end].startswith(_CONTINUES)):
                shortest = (end, body)
                break
            shortest = shortest or ((end, body) if body else None)
        end, body = shortest or (start + 1, [])
        found.extend(body)
        start = end
    return found


def _parse(text: str) -> list[ast.stmt]:
    try:
        return ast.parse(text).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []


_UNITTEST = {"assertEqual": ast.Eq, "assertNotEqual": ast.NotEq, "assertIs": ast.Is, "assertIsNot": ast.IsNot,
             "assertIn": ast.In, "assertNotIn": ast.NotIn}  # fmt: skip


def _unittest_check(call: ast.Call) -> ast.expr | None:
    """``self.assertEqual(a, b)`` and friends as the expression an ``assert`` would test."""
    name = call.func.attr if isinstance(call.func, ast.Attribute) else ""
    args = call.args
    if name in _UNITTEST and len(args) >= 2:
        return ast.Compare(left=args[0], ops=[_UNITTEST[name]()], comparators=[args[1]])
    if name in ("assertTrue", "assertFalse", "assertIsNone", "assertIsNotNone") and args:
        return {"assertTrue": args[0], "assertFalse": ast.UnaryOp(op=ast.Not(), operand=args[0]),
                "assertIsNone": ast.Compare(left=args[0], ops=[ast.Is()], comparators=[ast.Constant(None)]),
                "assertIsNotNone": ast.Compare(left=args[0], ops=[ast.IsNot()], comparators=[ast.Constant(None)])}[name]  # fmt: skip
    return None


class _Substitute(ast.NodeTransformer):
    def __init__(self, values: dict[str, ast.expr]) -> None:
        self.values = values

    def visit_Name(self, node: ast.Name) -> ast.expr:
        return self.values.get(node.id, node) if isinstance(node.ctx, ast.Load) else node


def _unrolled(loop: ast.For) -> list[ast.stmt]:
    """``for x, y in [(1, 2), ...]: assert f(x) == y`` as one statement per case (literal cases only)."""
    try:
        cases = ast.literal_eval(loop.iter)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return []
    names = [loop.target] if isinstance(loop.target, ast.Name) else getattr(loop.target, "elts", None)
    if not isinstance(cases, (list, tuple)) or not names or not all(isinstance(n, ast.Name) for n in names) or len(cases) > 100:
        return []
    out: list[ast.stmt] = []
    for case in cases:
        values = [case] if len(names) == 1 else case
        if not isinstance(values, (list, tuple)) or len(values) != len(names):
            return []
        subst = {n.id: ast.parse(repr(v), mode="eval").body for n, v in zip(names, values)}
        out.extend(_Substitute(subst).visit(ast.parse(ast.unparse(s))).body[0] for s in loop.body)
    return out


def _checks(stmts: list[ast.stmt], top: bool = True) -> list[ast.expr]:
    """What the statements assert: ``assert`` statements (inside test functions, classes and
    blocks too), unittest ``self.assert*`` calls, literal loops unrolled, and, at the top level of
    a test sample, bare comparisons (a test written without its ``assert``)."""
    found: list[ast.expr] = []
    for stmt in stmts:
        if isinstance(stmt, ast.Assert):
            found.append(stmt.test)
        elif (
            isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and (check := _unittest_check(stmt.value)) is not None
        ):
            found.append(check)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Compare) and top:
            found.append(stmt.value)
        elif isinstance(stmt, ast.For):
            found.extend(_checks(_unrolled(stmt), top=False))
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.With, ast.If, ast.Try)):
            found.extend(_checks(stmt.body, top=False))
    return found


def extract_tests(output: str, entry_point: str, sample_index: int) -> list[Parsed]:
    """Standalone ``assert`` statements calling ``entry_point`` (kept or with a drop reason)."""
    failed = _failure(output)
    if failed:
        return [Parsed(sample_index, reason=failed[0], detail=failed[1])]
    found: list[Parsed] = []
    for block in code_blocks(output):
        for test in _checks(_statements(block)):
            text = ast.unparse(ast.Assert(test=test, msg=None))
            if not _calls(test, entry_point):
                found.append(Parsed(sample_index, text, reason="no_entry_point_call"))
            elif (
                isinstance(test, ast.Compare)
                and len(test.comparators) == 1
                and ast.dump(test.left) == ast.dump(test.comparators[0])
            ):
                found.append(Parsed(sample_index, text, reason="trivial", detail="both sides identical"))
            else:
                found.append(Parsed(sample_index, text, normalized_hash(text)))
    return found or [Parsed(sample_index, reason="no_assert", detail="no assert statement found")]


def dedupe(items: list[Parsed]) -> list[Parsed]:
    """Keep the first of each normalized AST, with the number of samples that produced it (how
    often a model writes a program or test is evidence about it); later copies become
    ``duplicate`` drops."""
    samples: dict[str, set[int]] = {}
    for item in items:
        if item.kept:
            samples.setdefault(item.norm_hash, set()).add(item.sample_index)
    seen: set[str] = set()
    out = []
    for item in items:
        if item.kept and item.norm_hash in seen:
            out.append(Parsed(item.sample_index, item.text, item.norm_hash, "duplicate"))
        elif item.kept:
            seen.add(item.norm_hash)
            out.append(replace(item, multiplicity=len(samples[item.norm_hash])))
        else:
            out.append(item)
    return out
