"""Seed harvesting: self-contained, side-effect-free top-level Python functions from source text.

CodeDPO turns each seed into a programming task whose candidates run in a sandbox, so a seed
must stand alone (stdlib imports only, no module-level helpers) and must not touch files, the
network, processes or global state. Every function that is not kept gets a reason, so SQL can
show where a source tree's code went.
"""

from __future__ import annotations

import ast
import builtins
import io
import symtable
import sys
import tokenize
from dataclasses import dataclass

from codedpo_assets.decontam import Decontaminator
from codedpo_assets.normalize import content_hash, normalized_hash
from codedpo_assets.sources import SourceSpec, Unit, read_unit

# Modules whose use means I/O, network, processes, interpreter or global state: a seed using
# them cannot be judged by pure input/output tests. Reason code per module family.
_BANNED_MODULES: dict[str, str] = {
    **dict.fromkeys(
        [
            "os",
            "pathlib",
            "shutil",
            "tempfile",
            "glob",
            "io",
            "fileinput",
            "zipfile",
            "tarfile",
            "sqlite3",
            "dbm",
            "shelve",
            "mmap",
            "filecmp",
            "linecache",
            "fcntl",
            "zipimport",
        ],
        "side_effect:filesystem",
    ),
    **dict.fromkeys(
        [
            "socket",
            "ssl",
            "urllib",
            "http",
            "ftplib",
            "smtplib",
            "poplib",
            "imaplib",
            "nntplib",
            "telnetlib",
            "xmlrpc",
            "socketserver",
            "asyncio",
            "selectors",
            "select",
            "webbrowser",
        ],
        "side_effect:network",
    ),
    **dict.fromkeys(
        [
            "subprocess",
            "multiprocessing",
            "concurrent",
            "threading",
            "_thread",
            "signal",
            "pty",
            "ctypes",
            "resource",
            "atexit",
            "gc",
            "faulthandler",
            "importlib",
            "runpy",
            "pkgutil",
            "site",
            "sysconfig",
            "sys",
            "builtins",
            "platform",
            "getpass",
            "pwd",
            "grp",
            "locale",
            "logging",
            "warnings",
            "tkinter",
            "turtle",
            "curses",
            "readline",
            "pdb",
            "code",
            "pickle",
            "marshal",
            "copyreg",
            "inspect",
            "tracemalloc",
        ],
        "side_effect:process",
    ),
    **dict.fromkeys(["random", "secrets", "time", "uuid"], "nondeterministic"),
}
_BANNED_CALLS: dict[str, str] = {
    **dict.fromkeys(["open", "input", "print"], "side_effect:io"),
    **dict.fromkeys(
        ["exec", "eval", "compile", "__import__", "globals", "breakpoint", "exit", "quit", "help"],
        "side_effect:process",
    ),
}
_NONDETERMINISTIC_ATTRS = frozenset({"now", "today", "utcnow"})
_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class HarvestRules:
    """Bounds on what counts as a seed; defaults follow the issue (3–60 lines, 1 MB files)."""

    min_lines: int = 3
    max_lines: int = 60
    max_file_bytes: int = 1_000_000


@dataclass(frozen=True)
class Seed:
    symbol: str
    code: str
    n_lines: int
    imports: tuple[str, ...]
    norm_hash: str
    content_hash: str


@dataclass(frozen=True)
class Rejection:
    """Why an input (a file, a record or one function in it) produced no seed."""

    reason: str
    detail: str = ""
    symbol: str | None = None


def decode_source(raw: bytes, rules: HarvestRules) -> str | Rejection:
    """Bytes → text, honouring PEP 263 coding cookies; binary, huge or undecodable → Rejection."""
    if len(raw) > rules.max_file_bytes:
        return Rejection("too_large", f"{len(raw)} bytes > {rules.max_file_bytes}")
    if b"\0" in raw:
        return Rejection("binary", "contains NUL bytes")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        return raw.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        return Rejection("not_utf8", str(exc)[:200])


@dataclass(frozen=True)
class _Import:
    module: str  # top-level package, e.g. "collections" for "collections.abc"
    statement: str  # one import statement binding exactly one name


def _module_imports(tree: ast.Module) -> dict[str, _Import]:
    """Names bound by module-level imports → where they come from."""
    bound: dict[str, _Import] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                stmt = ast.unparse(ast.Import(names=[alias]))
                name = alias.asname or alias.name.split(".")[0]
                bound[name] = _Import(alias.name.split(".")[0], stmt)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                stmt = ast.unparse(ast.ImportFrom(module=node.module, names=[alias], level=node.level))
                bound[alias.asname or alias.name] = _Import(module.split(".")[0] if not node.level else module, stmt)
    return bound


def _module_rejection(module: str) -> str | None:
    """Reason code if importing ``module`` disqualifies a seed, else None."""
    if module.startswith(".") or module not in sys.stdlib_module_names:
        return "non_stdlib_import"
    return _BANNED_MODULES.get(module)


def _referenced_globals(table: symtable.SymbolTable) -> tuple[set[str], set[str]]:
    """(global names read anywhere in the function or its nested scopes, names declared global)."""
    used: set[str] = set()
    declared: set[str] = set()
    for sym in table.get_symbols():
        if sym.is_declared_global():
            declared.add(sym.get_name())
        if sym.is_global() and sym.is_referenced():
            used.add(sym.get_name())
    for child in table.get_children():
        child_used, child_declared = _referenced_globals(child)
        used |= child_used
        declared |= child_declared
    return used, declared


def _is_trivial(node: ast.FunctionDef) -> bool:
    body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    return all(isinstance(s, (ast.Pass, ast.Raise)) for s in body)


def _body_rejection(node: ast.FunctionDef) -> tuple[str, str] | None:
    """Side effects visible in the function body itself (calls, local imports, `global`)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Global):
            return "global_state", f"declares global {', '.join(sub.names)}"
        if isinstance(sub, (ast.Import, ast.ImportFrom)):
            for module in _module_imports(ast.Module(body=[sub], type_ignores=[])).values():
                reason = _module_rejection(module.module)
                if reason:
                    return reason, f"imports {module.module}"
        if isinstance(sub, ast.Call):
            func = sub.func
            if isinstance(func, ast.Name) and func.id in _BANNED_CALLS:
                return _BANNED_CALLS[func.id], f"calls {func.id}()"
            if isinstance(func, ast.Attribute) and func.attr in _NONDETERMINISTIC_ATTRS:
                return "nondeterministic", f"calls .{func.attr}()"
    return None


def _function_tables(text: str) -> dict[tuple[str, int], symtable.SymbolTable]:
    top = symtable.symtable(text, "<seed>", "exec")
    return {(t.get_name(), t.get_lineno()): t for t in top.get_children() if t.get_type() == "function"}


def _harvest_function(
    node: ast.FunctionDef, lines: list[str], imports: dict[str, _Import], table: symtable.SymbolTable, rules: HarvestRules
) -> Seed | Rejection:
    name = node.name
    n_lines = (node.end_lineno or node.lineno) - node.lineno + 1
    if node.decorator_list:
        return Rejection("decorated", "decorators depend on module context", name)
    if n_lines < rules.min_lines:
        return Rejection("too_short", f"{n_lines} lines < {rules.min_lines}", name)
    if n_lines > rules.max_lines:
        return Rejection("too_long", f"{n_lines} lines > {rules.max_lines}", name)
    if _is_trivial(node):
        return Rejection("trivial_body", "only docstring/pass/raise", name)
    found = _body_rejection(node)
    if found:
        return Rejection(found[0], found[1], name)
    used, declared = _referenced_globals(table)
    if declared:
        return Rejection("global_state", f"declares global {', '.join(sorted(declared))}", name)
    needed: list[_Import] = []
    for ref in sorted(used - {name}):
        if ref in imports:
            reason = _module_rejection(imports[ref].module)
            if reason:
                return Rejection(reason, f"uses {imports[ref].module}", name)
            needed.append(imports[ref])
        elif ref in _BUILTINS:
            if ref in _BANNED_CALLS:
                return Rejection(_BANNED_CALLS[ref], f"uses {ref}", name)
        else:
            return Rejection("module_dependency", f"needs module-level name {ref!r}", name)
    statements = tuple(sorted({imp.statement for imp in needed}))
    body = "\n".join(lines[node.lineno - 1 : node.end_lineno]).rstrip() + "\n"
    code = ("\n".join(statements) + "\n\n\n" if statements else "") + body
    try:
        compile(code, "<seed>", "exec")
    except SyntaxError as exc:  # e.g. a def whose body relies on `from __future__` features
        return Rejection("syntax_error", f"standalone seed does not compile: {exc.msg}", name)
    return Seed(name, code, n_lines, statements, normalized_hash(code), content_hash(code))


def harvest_module(text: str, rules: HarvestRules = HarvestRules()) -> tuple[list[Seed], list[Rejection]]:
    """All seeds of one module's source text plus a reason for every top-level function dropped.

    Within the module, functions with the same normalized AST are kept once.
    """
    try:
        tree = ast.parse(text)
        tables = _function_tables(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return [], [Rejection("syntax_error", f"{type(exc).__name__}: {exc}"[:200])]
    imports = _module_imports(tree)
    lines = text.splitlines()
    seeds: dict[str, Seed] = {}
    rejections: list[Rejection] = []
    for node in tree.body:
        if isinstance(node, ast.AsyncFunctionDef):
            rejections.append(Rejection("async", "coroutines need an event loop", node.name))
            continue
        if not isinstance(node, ast.FunctionDef):
            continue
        result = _harvest_function(node, lines, imports, tables[(node.name, node.lineno)], rules)
        if isinstance(result, Rejection):
            rejections.append(result)
        elif result.norm_hash in seeds:
            rejections.append(Rejection("duplicate", f"same normalized AST as {seeds[result.norm_hash].symbol}", node.name))
        else:
            seeds[result.norm_hash] = result
    return list(seeds.values()), rejections


def harvest_unit(
    spec: SourceSpec,
    unit: Unit,
    rules: HarvestRules = HarvestRules(),
    decontaminator: Decontaminator | None = None,
    revision: str = "",
) -> tuple[list[dict], list[dict]]:
    """Rows for the ``seeds`` and ``seeds_rejected`` tables from one partition unit.

    Seeds are unique by normalized AST within the unit; a seed overlapping the benchmark is
    rejected as ``decontaminated`` with its score and the matched task.
    """
    seeds: dict[str, dict] = {}
    rejected: list[dict] = []

    def reject(path: str, r: Rejection) -> None:
        rejected.append(
            {
                "partition_key": unit.key,
                "source": spec.name,
                "path": path,
                "symbol": r.symbol,
                "reason": r.reason,
                "detail": r.detail,
            }
        )

    for item in read_unit(spec, unit):
        if item.data is None:
            reject(item.path, Rejection(item.reason or "unreadable", item.detail))
            continue
        text = decode_source(item.data, rules)
        if isinstance(text, Rejection):
            reject(item.path, text)
            continue
        found, dropped = harvest_module(text, rules)
        for r in dropped:
            reject(item.path, r)
        for seed in found:
            if seed.norm_hash in seeds:
                first = seeds[seed.norm_hash]
                reject(
                    item.path, Rejection("duplicate", f"same normalized AST as {first['path']}::{first['symbol']}", seed.symbol)
                )
                continue
            score = 0.0
            if decontaminator is not None:
                overlap = decontaminator.check(seed.code)
                score = overlap.score
                if decontaminator.is_contaminated(overlap):
                    detail = f"{overlap.score:.2f} of {decontaminator.n}-grams shared with {overlap.task_id}"
                    reject(item.path, Rejection("decontaminated", detail, seed.symbol))
                    continue
            seeds[seed.norm_hash] = {
                "partition_key": unit.key,
                "seed_id": content_hash(f"{unit.key}\0{seed.norm_hash}"),
                "source": spec.name,
                "source_kind": spec.kind,
                "path": item.path,
                "symbol": seed.symbol,
                "code": seed.code,
                "license": item.license,
                "revision": revision,
                "imports": list(seed.imports),
                "n_lines": seed.n_lines,
                "content_hash": seed.content_hash,
                "norm_hash": seed.norm_hash,
                "unit_hash": unit.content_hash,
                "contamination": score,
            }
    return list(seeds.values()), rejected
