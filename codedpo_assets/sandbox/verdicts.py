"""Test statements → what the sandboxed child evaluates, and the verdict the parent computes.

For ``assert CALL == EXPECTED`` (and ``!=``, ``is None``, truthiness, ``math.isclose``,
``abs(CALL - X) < tol``) the child evaluates only ``CALL`` and returns plain data; the parent
evaluates ``EXPECTED`` with ``ast.literal_eval`` and compares. Other assertions over the program's
calls (conjunctions, membership, chained comparisons, ``not``, ``isinstance``, arithmetic on
results) are split: the child evaluates the calls, the parent the rest
(:mod:`codedpo_assets.sandbox.expressions`). Either way the child never sees the expected value,
so rigged ``__eq__``, a patched harness or forged output cannot produce a pass. Only what cannot
be split (statements other than one ``assert``, a call whose own result is the verdict) runs
in-process, and its verdict is marked unverified.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from codedpo_assets.sandbox import expressions

_NO_VALUE = object()


@dataclass(frozen=True)
class Check:
    kind: str  # "value" / "parts": verified outside the child; "stmt": runs in-process (unverified)
    src: str  # what the child runs: the call expression, or the whole statement (parts: the statement)
    op: str = ""  # eq, ne, is, is_not, true, false, isclose, absdiff_lt, absdiff_le; "parts"
    expected: Any = None  # the literal compared with (parts: the expression the parent evaluates)
    rel_tol: float = 1e-9
    abs_tol: float = 0.0
    parts: tuple[str, ...] = ()  # parts: the expressions the child evaluates

    @property
    def verified(self) -> bool:
        return self.kind != "stmt"

    @property
    def wire(self) -> str:
        """What the child receives for this test."""
        return json.dumps(list(self.parts)) if self.kind == "parts" else self.src


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO_VALUE


def _value_check(
    call: ast.expr, op: str, expected: Any = None, rel_tol: float = Check.rel_tol, abs_tol: float = Check.abs_tol
) -> Check | None:
    """A verified check, or None when the child would decide the verdict itself: the evaluated
    expression must hold no comparison or boolean operator (a rigged ``__eq__`` would answer), and
    a bare truthiness test must be a plain call of a program function (not e.g. ``math.isclose`` or
    ``isinstance``, which the candidate can patch)."""
    if _literal(call) is not _NO_VALUE:  # constant on both sides: not a test of the program
        return None
    if any(isinstance(n, (ast.Compare, ast.BoolOp)) for n in ast.walk(call)):
        return None
    if op in ("true", "false") and not (
        isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and not hasattr(builtins, call.func.id)
    ):
        return None  # the truth of a builtin's answer (``isinstance(f(x), int)``) is judged here: expressions
    return Check("value", ast.unparse(call), op, expected, rel_tol, abs_tol)


def _compare(test: ast.Compare) -> Check | None:
    if len(test.ops) != 1:
        return None
    left, op, right = test.left, test.ops[0], test.comparators[0]
    if isinstance(op, (ast.Eq, ast.NotEq)):
        name = "eq" if isinstance(op, ast.Eq) else "ne"
        for call, lit in ((left, right), (right, left)):
            expected = _literal(lit)
            if expected is not _NO_VALUE:
                return _value_check(call, name, expected)
    if isinstance(op, (ast.Is, ast.IsNot)) and isinstance(right, ast.Constant) and right.value in (None, True, False):
        return _value_check(left, "is" if isinstance(op, ast.Is) else "is_not", right.value)
    if isinstance(op, (ast.Lt, ast.LtE)) and isinstance(left, ast.Call) and isinstance(left.func, ast.Name):
        tol = _literal(right)
        if (
            left.func.id == "abs"
            and len(left.args) == 1
            and isinstance(left.args[0], ast.BinOp)
            and isinstance(tol, (int, float))
        ):
            diff = left.args[0]
            expected = _literal(diff.right)
            if isinstance(diff.op, ast.Sub) and isinstance(expected, (int, float)):
                name = "absdiff_lt" if isinstance(op, ast.Lt) else "absdiff_le"
                return _value_check(diff.left, name, expected, abs_tol=float(tol))
    return None


def _isclose(test: ast.Call) -> Check | None:
    func = test.func
    named = isinstance(func, ast.Name) and func.id == "isclose"
    dotted = (
        isinstance(func, ast.Attribute)
        and func.attr == "isclose"
        and isinstance(func.value, ast.Name)
        and func.value.id == "math"
    )
    if not (named or dotted) or len(test.args) != 2:
        return None
    if any(k.arg is None for k in test.keywords):  # ``**options``: not a literal tolerance
        return None
    kwargs = {str(k.arg): _literal(k.value) for k in test.keywords}
    if set(kwargs) - {"rel_tol", "abs_tol"} or any(not isinstance(v, (int, float)) for v in kwargs.values()):
        return None
    tol = {k: float(v) for k, v in kwargs.items()}
    for call, lit in ((test.args[0], test.args[1]), (test.args[1], test.args[0])):
        expected = _literal(lit)
        if isinstance(expected, (int, float)) and not isinstance(expected, bool):
            return _value_check(call, "isclose", expected, **tol)
    return None


def parse_test(statement: str) -> Check:
    """How to run and judge one test statement (anything unrecognised runs as a statement)."""
    try:
        return _parse_test(statement)
    except (RecursionError, MemoryError):  # absurdly nested test: run it, unverified
        return Check("stmt", statement)


def _parse_test(statement: str) -> Check:
    stmt_check = Check("stmt", statement)
    try:
        tree = ast.parse(statement)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return stmt_check  # the zygote reports it as an error
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return stmt_check
    test = tree.body[0].test
    found: Check | None = None
    if isinstance(test, ast.Compare):
        found = _compare(test)
    elif isinstance(test, ast.Call) and _isclose(test):
        found = _isclose(test)
    elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        found = _value_check(test.operand, "false")
    if found is None and not isinstance(test, (ast.Compare, ast.BoolOp, ast.UnaryOp)):
        found = _value_check(test, "true")
    if found is None and (split := expressions.split(test)) is not None:
        found = Check("parts", statement, "parts", split[0], parts=split[1])
    return found or stmt_check


def decode(tagged: Any, depth: int = 0) -> Any:
    """Inverse of the zygote's ``_encode``; raises ValueError on anything malformed."""
    if depth > 60 or not isinstance(tagged, list) or not tagged or not isinstance(tagged[0], str):
        raise ValueError("malformed value")
    tag, args = tagged[0], tagged[1:]
    if tag == "N":
        return None
    if tag == "B" and isinstance(args[0], bool):
        return args[0]
    if tag == "i" and isinstance(args[0], str) and args[0] != "huge":
        return int(args[0])
    if tag == "f":
        return float(args[0])
    if tag == "c":
        return complex(float(args[0]), float(args[1]))
    if tag == "s" and isinstance(args[0], str):
        return args[0]
    if tag == "b":
        return bytes.fromhex(args[0])
    if tag in ("l", "t", "S", "F"):
        items = [decode(v, depth + 1) for v in args[0]]
        return {"l": list, "t": tuple, "S": set, "F": frozenset}[tag](items)
    if tag == "d":
        return {decode(k, depth + 1): decode(v, depth + 1) for k, v in args[0]}
    raise ValueError(f"malformed value tag {tag!r}")


def judge(check: Check, tagged: Any) -> tuple[bool, str]:
    """(passed, reason) for a value returned by the child, compared here in the parent."""
    try:
        value = decode(tagged)
    except (ValueError, TypeError, IndexError, KeyError, OverflowError):
        return False, "result is not plain data"
    try:
        if check.op == "eq":
            ok = bool(value == check.expected)
        elif check.op == "ne":
            ok = bool(value != check.expected)
        elif check.op == "is":
            ok = value is check.expected
        elif check.op == "is_not":
            ok = value is not check.expected
        elif check.op in ("true", "false"):
            ok = bool(value) is (check.op == "true")
        elif check.op == "isclose":
            ok = isinstance(value, (int, float)) and math.isclose(
                value, check.expected, rel_tol=check.rel_tol, abs_tol=check.abs_tol
            )
        else:  # absdiff_lt / absdiff_le
            diff = abs(value - check.expected)
            ok = diff < check.abs_tol if check.op == "absdiff_lt" else diff <= check.abs_tol
    except (TypeError, ValueError, OverflowError, RecursionError):
        return False, "result cannot be compared"
    return ok, "" if ok else f"got {_short(value)}"


def judge_parts(check: Check, tagged: Any) -> tuple[str, str]:
    """(status, reason) of a split assertion from the values its parts returned: a part that
    raised or returned something unverifiable decides only if the expression needs it."""
    if not isinstance(tagged, list) or len(tagged) != len(check.parts):
        return "fail", "malformed parts"
    parts: list[Any] = []
    for item in tagged:
        if isinstance(item, list) and len(item) == 2 and item[0] in ("!", "?"):
            status = "error" if item[0] == "!" else "fail"
            parts.append(expressions.PartError(status, str(item[1])[:200]))
            continue
        try:
            parts.append(decode(item))
        except (ValueError, TypeError, IndexError, KeyError, OverflowError):
            parts.append(expressions.PartError("fail", "result is not plain data"))
    try:
        ok = bool(expressions.evaluate(check.expected, parts))
    except expressions.PartError as exc:
        return exc.status, exc.reason
    except (Exception, RecursionError) as exc:  # noqa: BLE001 -- the assertion raised on these values, as it would in Python
        return "error", f"{type(exc).__name__}: {str(exc)[:200]}"
    return ("pass", "") if ok else ("fail", f"false for {_short([p for p in parts if not isinstance(p, Exception)])}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


FINGERPRINT_TEXT = 64  # canonical encodings up to this length are kept readable; longer ones hashed
_NEEDS_CANON = ('["S"', '["F"', '["d"', '["B"', '["f"', '["c"')


def fingerprint_value(tagged: Any) -> str:
    """What a value check's call returned, as a short stable string: ``=`` + its canonical
    plain-data encoding (or ``#`` + a hash of it when long). Values equal under ``==`` share it
    (sets and dict items sorted, ``True``/``1``/``1.0`` alike), so it clusters behaviour, not text.
    Anything malformed gets ``!unencodable``: a stable fingerprint, never an exception. ASCII only
    (non-ASCII escaped), so odd strings (lone surrogates) store and compare anywhere."""
    try:
        text = json.dumps(tagged, separators=(",", ":"))
        if any(marker in text for marker in _NEEDS_CANON):
            text = json.dumps(_canonical(tagged, 0), separators=(",", ":"))
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, RecursionError):
        return "!unencodable"
    if len(text) <= FINGERPRINT_TEXT:
        return "=" + text
    return "#" + hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def fingerprint_outcome(status: str, reason: str = "") -> str:
    """A cell without a value: its status, with the exception type for errors (``!error:KeyError``)
    and the failure class for unverifiable results, so programs failing alike cluster together."""
    if status in ("error", "fail") and reason:
        head = reason.split(":", 1)[0].strip()
        if head.isidentifier():
            return f"!{status}:{head}"
        if reason.startswith("unverifiable result"):
            return "!unverifiable"
    return "!" + status


def _canonical(tagged: Any, depth: int) -> Any:
    """The tagged encoding with order-free containers sorted and numbers merged as ``==`` does."""
    if depth > 60 or not isinstance(tagged, list) or not tagged or not isinstance(tagged[0], str):
        raise ValueError("malformed value")
    tag, args = tagged[0], tagged[1:]
    if tag == "B":
        return ["i", "1" if args[0] else "0"]
    if tag == "f":
        number = float(args[0])
        return ["i", str(int(number))] if number.is_integer() else ["f", repr(number)]
    if tag == "c":
        real, imag = float(args[0]), float(args[1])
        return _canonical(["f", repr(real)], depth) if imag == 0 else ["c", repr(real), repr(imag)]
    if tag in ("l", "t"):
        return [tag, [_canonical(v, depth + 1) for v in args[0]]]
    if tag in ("S", "F"):  # set == frozenset with the same items
        return ["S", sorted((_canonical(v, depth + 1) for v in args[0]), key=_sort_key)]
    if tag == "d":
        return ["d", sorted(([_canonical(k, depth + 1), _canonical(v, depth + 1)] for k, v in args[0]), key=_sort_key)]
    return tagged


def _sort_key(item: Any) -> str:
    return json.dumps(item, separators=(",", ":"))
