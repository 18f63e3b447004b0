"""Composite assertions judged outside the candidate: the program's calls run in the sandbox, the
rest of the assertion is evaluated here, on the plain data they returned.

``assert f(1) == 2 and f(2) in (3, 4)``, ``assert isinstance(f(x), list) and len(f(x)) == 3``,
``assert 0 < f(5) < 1``, ``assert f(5) == [2, 1 + 2, 3]``: the child evaluates only the *parts*
(``f(1)``, ``f(2)``, ...: the largest subexpressions outside the judge's small language) and
returns their values; comparisons, boolean logic, membership, arithmetic on the results and a few
pure builtins (``len``, ``sorted``, ``isinstance``, ...) run here, in a tree-walking evaluator
with size guards, on values decoded into exact builtin types. The child never sees what its values
are compared with, so neither forged result lines nor a patched ``__eq__``, ``isinstance`` or
clock can make the verdict a pass. Parts are evaluated eagerly, each on its own: an error in one
counts only if the judge needs that part (``x is None or f(x)`` short-circuits here as in Python).
"""

from __future__ import annotations

import ast
import builtins
import math
import operator
from collections.abc import Callable
from typing import Any

MAX_ITEMS = 1_000_000  # largest sequence the judge builds (``[0] * n``)
MAX_EXPONENT = 10_000
PLACEHOLDER = "_part"

_PURE: dict[str, Any] = {name: getattr(builtins, name) for name in ("len", "abs", "round", "min", "max", "sum", "sorted", "set", "list", "tuple",
                                                                  "frozenset", "all", "any", "isinstance", "int", "float", "str", "bool",
                                                                  "dict", "type", "reversed")}  # fmt: skip


def _range(*args: int) -> range:
    """``range``, refused where a judge-built list of it would pass the size guard."""
    result = range(*args)
    if len(result) > MAX_ITEMS:
        raise MemoryError("range too large to judge")
    return result


_PURE["range"] = _range
_TYPES = {"int", "float", "str", "bool", "list", "tuple", "dict", "set", "frozenset", "type"}
_KEYWORDS = {"sorted": {"reverse"}, "isclose": {"rel_tol", "abs_tol"}, "round": set(), "sum": {"start"}}
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}  # fmt: skip
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
           ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not, ast.In: lambda a, b: a in b,
           ast.NotIn: lambda a, b: a not in b}  # fmt: skip
_UNARY: dict[type, Callable[[Any], Any]] = {ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos}


class PartError(Exception):
    """A part the judge needed did not give a value: ``status`` is how the test ends."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _is_isclose(func: ast.expr) -> bool:
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "isclose"
        and isinstance(func.value, ast.Name)
        and func.value.id == "math"
    )


def _callee(call: ast.Call) -> str | None:
    """The judge's name for a call it evaluates itself, or None."""
    if _is_isclose(call.func) or (isinstance(call.func, ast.Name) and call.func.id == "isclose"):
        return "isclose"
    if isinstance(call.func, ast.Name) and call.func.id in _PURE:
        return call.func.id
    return None


class _Splitter(ast.NodeTransformer):
    """Replace every subtree outside the judge's language by a placeholder; collect them."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.ok = True

    def _part(self, node: ast.expr) -> ast.expr:
        # a part holding a comparison or boolean logic would let the candidate's code decide it
        if any(isinstance(n, (ast.Compare, ast.BoolOp, ast.Lambda, ast.NamedExpr)) for n in ast.walk(node)):
            self.ok = False
        self.parts.append(ast.unparse(node))
        return ast.Name(f"{PLACEHOLDER}{len(self.parts) - 1}", ast.Load())

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node
        if isinstance(node, (ast.Compare, ast.BoolOp, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Subscript, ast.Slice)):
            return self.generic_visit(node)
        if (isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY) or (
            isinstance(node, ast.BinOp) and type(node.op) in _BINOPS
        ):
            return self.generic_visit(node)
        if isinstance(node, ast.Name) and node.id in _TYPES:
            return node
        if isinstance(node, ast.Call) and (name := _callee(node)) and not any(isinstance(a, ast.Starred) for a in node.args):
            if any(k.arg not in _KEYWORDS.get(name, set()) for k in node.keywords):
                self.ok = False
                return node
            node.args = [self.visit(a) for a in node.args]
            for k in node.keywords:
                k.value = self.visit(k.value)
            return node
        if isinstance(node, (ast.expr_context, ast.cmpop, ast.boolop, ast.operator, ast.unaryop)):
            return node
        if isinstance(node, ast.expr):
            return self._part(node)
        self.ok = False
        return node


def split(test: ast.expr) -> tuple[ast.Expression, tuple[str, ...]] | None:
    """(what the judge evaluates, the parts the child evaluates), or None when the assertion cannot
    be judged outside the candidate (a part that would decide the verdict itself, or no part)."""
    splitter = _Splitter()
    judged = splitter.visit(_copy(test))
    if not splitter.ok or not splitter.parts or (isinstance(judged, ast.Name) and judged.id.startswith(PLACEHOLDER)):
        return None
    tree = ast.fix_missing_locations(ast.Expression(judged))
    if not _constant_sizes_ok(tree):
        return None
    return tree, tuple(splitter.parts)


def _copy(node: ast.expr) -> ast.expr:
    return ast.parse(ast.unparse(node), mode="eval").body


def _constant_sizes_ok(tree: ast.Expression) -> bool:
    """No literal exponent or repeat count beyond the guards (checked again at evaluation)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Pow, ast.Mult)):
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and isinstance(side.value, int) and abs(side.value) > MAX_ITEMS:
                    return False
    return True


def evaluate(tree: ast.Expression, parts: list[Any]) -> Any:
    """The judged expression's value; ``parts[k]`` is a value, or a PartError raised if needed."""
    return _eval(tree.body, parts)


def _eval(node: ast.expr, parts: list[Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id.startswith(PLACEHOLDER):
            value = parts[int(node.id[len(PLACEHOLDER) :])]
            if isinstance(value, PartError):
                raise value
            return value
        return _PURE[node.id]
    if isinstance(node, ast.BoolOp):
        value = None
        for operand in node.values:
            value = _eval(operand, parts)
            if bool(value) is isinstance(node.op, ast.Or):
                return value
        return value
    if isinstance(node, ast.Compare):
        left = _eval(node.left, parts)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, parts)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, parts))
    if isinstance(node, ast.BinOp):
        return _binop(node.op, _eval(node.left, parts), _eval(node.right, parts))
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [_eval(e, parts) for e in node.elts]
        return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        return {_eval(k, parts): _eval(v, parts) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, ast.Subscript):
        return _eval(node.value, parts)[_eval(node.slice, parts)]
    if isinstance(node, ast.Slice):
        return slice(*(None if n is None else _eval(n, parts) for n in (node.lower, node.upper, node.step)))
    if isinstance(node, ast.Call):
        return _call(node, parts)
    raise TypeError(f"not judged: {type(node).__name__}")


def _call(node: ast.Call, parts: list[Any]) -> Any:
    name = _callee(node)
    if name is None:  # the checker admits only calls it names; kept as a guard, not a path
        raise TypeError(f"not judged: call of {ast.unparse(node.func)}")
    args = [_eval(a, parts) for a in node.args]
    kwargs = {k.arg: _eval(k.value, parts) for k in node.keywords if k.arg is not None}
    if name == "isclose":
        return math.isclose(*args, **kwargs)
    if name == "type":
        if len(args) != 1:
            raise TypeError("type() takes one argument here")
        return type(args[0])
    if name == "isinstance" and len(args) == 2 and not isinstance(args[1], (type, tuple)):
        raise TypeError("isinstance() arg 2 must be a type")
    result = _PURE[name](*args, **kwargs)
    return list(result) if name == "reversed" else result


def _binop(op: ast.operator, left: Any, right: Any) -> Any:
    """Arithmetic with guards: nothing the judge computes grows past MAX_ITEMS or MAX_EXPONENT."""
    if isinstance(op, ast.Mult):
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(count, int) and len(seq) * max(count, 0) > MAX_ITEMS:
                raise MemoryError("repetition too large to judge")
    if isinstance(op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
        raise OverflowError("exponent too large to judge")
    if isinstance(op, ast.Mod) and isinstance(left, (str, bytes)):
        raise TypeError("string formatting is not judged")
    return _BINOPS[type(op)](left, right)
