"""Rename-proof normalization of Python code, used to deduplicate seeds (and later candidates/tests).

Two snippets that differ only in formatting, comments, docstrings, annotations or the names of
their functions, parameters and local variables hash to the same value: near-copies of one
function would otherwise dominate the seed set and later the preference pairs.
"""

from __future__ import annotations

import ast
import builtins
import hashlib

_BUILTINS = frozenset(dir(builtins))


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        return body[1:] or [ast.Pass()]
    return body


def _defined_names(tree: ast.AST) -> list[str]:
    """Names the snippet binds itself (defs, params, assignment targets), in source order."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.arg):
            names.append(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.append(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.append(node.name)
    return list(dict.fromkeys(n for n in names if n not in _BUILTINS))


class _Canonicalizer(ast.NodeTransformer):
    """Replaces self-bound names with positional placeholders and drops non-semantic parts."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping

    def _rename(self, name: str) -> str:
        return self.mapping.get(name, name)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._rename(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._rename(node.arg)
        node.annotation = None
        return node

    def _visit_def(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> ast.AST:
        node.name = self._rename(node.name)
        node.body = _strip_docstring(node.body)
        if not isinstance(node, ast.ClassDef):
            node.returns = None
        self.generic_visit(node)
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_def

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        if node.name:
            node.name = self._rename(node.name)
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if node.value is None:
            return None
        assign = ast.Assign(targets=[node.target], value=node.value)
        return self.generic_visit(assign)


def canonical_dump(source: str | ast.AST) -> str:
    """Canonical text of a snippet; raises SyntaxError for unparsable code."""
    tree = ast.parse(source) if isinstance(source, str) else source
    tree = ast.parse(ast.unparse(tree))  # private copy: the transformer mutates
    tree.body = _strip_docstring(tree.body)
    mapping = {name: f"_v{i}" for i, name in enumerate(_defined_names(tree))}
    tree = _Canonicalizer(mapping).visit(tree)
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def normalized_hash(source: str | ast.AST) -> str:
    """Hex digest of :func:`canonical_dump`: equal for rename/format-only variants."""
    return hashlib.sha256(canonical_dump(source).encode()).hexdigest()[:32]


def content_hash(data: str | bytes) -> str:
    """Stable hex digest of raw content (files, snippets, units)."""
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:32]
