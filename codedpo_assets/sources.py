"""Seed sources: where seed code comes from and how it splits into stable partition units.

A *unit* is the smallest piece of a source that is rebuilt on its own: one file of a directory,
git checkout or the standard library, or one hash bucket of a JSONL file. Its key is the Dagster
partition key and its content hash the data version, so editing one file rebuilds one partition
while 10k seeds still make only as many partitions as there are files or shards.
Problems found while scanning (unreadable directories, broken links, FIFOs) become units too,
so every skipped input keeps a counted reason in DuckDB.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import os
import re
import stat
import subprocess
import sysconfig
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from codedpo_assets.normalize import content_hash

SOURCE_KINDS = ("stdlib", "directory", "git", "jsonl")

# A quick-demo slice of the standard library (8 files, ~37 seeds): small enough that `make run`
# also generates, sandboxes and scores on a 2-core CPU in minutes. modules=["*"] uses all of it.
STDLIB_DEMO_MODULES: tuple[str, ...] = (
    "base64.py", "bisect.py", "calendar.py", "colorsys.py", "difflib.py", "heapq.py", "statistics.py",
    "textwrap.py",
)  # fmt: skip
# Never harvested from the stdlib: test suites, GUI/demo code, vendored packages.
STDLIB_EXCLUDE: tuple[str, ...] = (
    "test/*", "*/test/*", "*/tests/*", "idlelib/*", "lib2to3/*", "tkinter/*", "turtledemo/*",
    "ensurepip/*", "site-packages/*", "dist-packages/*", "__phello__/*", "config-*",
)  # fmt: skip
_HIDDEN = re.compile(r"(^|/)\.")
_KEY_UNSAFE = re.compile(r"%|\.\.\.|[\x00-\x1f]")
_LICENSE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "COPYING", "COPYING.txt")
_LICENSE_MARKERS = (  # (SPDX id, markers that must all occur in the license text)
    ("Apache-2.0", ("Apache License", "Version 2.0")),
    ("MIT", ("Permission is hereby granted, free of charge",)),
    ("BSD-3-Clause", ("Redistribution and use", "Neither the name")),
    ("BSD-2-Clause", ("Redistribution and use",)),
    ("GPL-3.0", ("GNU GENERAL PUBLIC LICENSE", "Version 3")),
    ("GPL-2.0", ("GNU GENERAL PUBLIC LICENSE", "Version 2")),
    ("LGPL", ("GNU LESSER GENERAL PUBLIC LICENSE",)),
    ("MPL-2.0", ("Mozilla Public License",)),
    ("Unlicense", ("This is free and unencumbered software",)),
    ("PSF-2.0", ("PYTHON SOFTWARE FOUNDATION LICENSE",)),
)
_MAX_READ = 64 << 20  # bytes of a file read for hashing/harvesting (larger files are too_large anyway)
_hash_cache: dict[str, tuple[tuple[int, int, int], list[str]]] = {}  # JSONL path → (size, mtime, shards), hashes


class SourceConfigError(ValueError):
    """A seed source is misconfigured; the message names the offending field."""


@dataclass(frozen=True)
class SourceSpec:
    """One configured seed source (see docs/architecture.md 'Seed sources' for examples)."""

    name: str
    kind: str
    path: str = ""  # directory / git checkout / JSONL file or folder; unused for stdlib
    include: tuple[str, ...] = ("*.py",)  # fnmatch patterns on paths relative to the root
    exclude: tuple[str, ...] = ()
    modules: tuple[str, ...] = STDLIB_DEMO_MODULES  # stdlib only: relative paths, or ("*",) for all
    license: str = ""  # overrides the detected license
    shards: int = 1  # jsonl only: hash buckets (partitions) per file
    code_field: str = "seed"  # jsonl only: field holding the code (Magicoder OSS-Instruct: "seed")
    lang_field: str = "lang"  # jsonl only: rows whose language is set and not Python are skipped


@dataclass(frozen=True)
class Unit:
    """One partition's worth of a source."""

    key: str
    source: str
    path: str  # posix path relative to the source root
    content_hash: str = ""
    shard: int | None = None  # jsonl bucket
    issue: str | None = None  # scan problem (reason code) instead of content
    issue_detail: str = ""


@dataclass(frozen=True)
class Item:
    """One piece of code to harvest from (a file, or a JSONL record), or why there is none."""

    path: str
    data: bytes | None
    license: str
    reason: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class _Resolved:
    root: Path
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    files: tuple[str, ...] | None = None  # explicit file list (git ls-files)
    license: str = ""
    revision: str = ""


def parse_sources(raw: Sequence[SourceSpec | dict]) -> list[SourceSpec]:
    """Validate source configs; errors name the field, e.g. ``sources[1].path``."""
    known = {f.name for f in fields(SourceSpec)}
    specs: list[SourceSpec] = []
    for i, item in enumerate(raw):
        where = f"sources[{i}]"
        if isinstance(item, dict):
            unknown = set(item) - known
            if unknown:
                raise SourceConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
            for name in ("name", "kind"):
                if name not in item:
                    raise SourceConfigError(f"{where}.{name}: required")
            values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in item.items()}
            spec = SourceSpec(**values)
        else:
            spec = item
        specs.append(_validate(spec, where))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SourceConfigError(f"sources[].name: duplicate source name(s) {dupes}")
    return specs


def _validate(spec: SourceSpec, where: str) -> SourceSpec:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", spec.name or ""):
        raise SourceConfigError(f"{where}.name: {spec.name!r} must be letters, digits, '_', '-', '.'")
    if spec.kind not in SOURCE_KINDS:
        raise SourceConfigError(f"{where}.kind: {spec.kind!r} is not one of {SOURCE_KINDS}")
    if spec.kind == "jsonl" and spec.shards < 1:
        raise SourceConfigError(f"{where}.shards: must be >= 1, got {spec.shards}")
    if spec.kind == "stdlib":
        return spec
    if not spec.path:
        raise SourceConfigError(f"{where}.path: required for kind {spec.kind!r}")
    path = Path(spec.path).expanduser()
    if not path.exists():
        raise SourceConfigError(f"{where}.path: {spec.path!r} does not exist")
    if spec.kind in ("directory", "git") and not path.is_dir():
        raise SourceConfigError(f"{where}.path: {spec.path!r} is not a directory")
    if spec.kind == "git" and _git(path, "rev-parse", "--show-toplevel") is None:
        raise SourceConfigError(f"{where}.path: {spec.path!r} is not a git checkout")
    return replace(spec, path=str(path.resolve()))


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.decode("utf-8", "surrogateescape")


def detect_license(root: Path) -> str:
    """SPDX-ish id from a LICENSE/COPYING file at ``root``; '' when none is recognised."""
    for name in _LICENSE_FILES:
        try:
            text = (root / name).read_text(errors="replace")[:20000]
        except OSError:
            continue
        for spdx, markers in _LICENSE_MARKERS:
            if all(m in text for m in markers):
                return spdx
        return "unknown"
    return ""


def _resolve(spec: SourceSpec) -> _Resolved:
    if spec.kind == "stdlib":
        root = Path(sysconfig.get_paths()["stdlib"])
        files = None if "*" in spec.modules else spec.modules  # a fixed list needs no tree walk
        return _Resolved(root, ("*.py",), STDLIB_EXCLUDE + spec.exclude, files, license="PSF-2.0")
    root = Path(spec.path)
    if spec.kind == "jsonl":
        if root.is_file():
            return _Resolved(root.parent, (root.name,), (), license=spec.license)
        return _Resolved(root, ("*.jsonl", "*.jsonl.gz"), spec.exclude, license=spec.license)
    license_ = spec.license or detect_license(root)
    if spec.kind == "git":
        listing = _git(root, "ls-files", "-z") or ""
        revision = (_git(root, "rev-parse", "HEAD") or "").strip()
        return _Resolved(root, spec.include, spec.exclude, tuple(p for p in listing.split("\0") if p), license_, revision)
    return _Resolved(root, spec.include, spec.exclude, license=license_)


def _matches(rel: str, res: _Resolved) -> bool:
    return any(fnmatch.fnmatch(rel, p) for p in res.include) and not any(fnmatch.fnmatch(rel, p) for p in res.exclude)


def partition_key(source: str, rel: str, shard: int | None = None) -> str:
    """Stable, injective partition key; escapes what Dagster forbids in keys ('...', controls)."""
    safe = _KEY_UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), rel)
    return f"{source}:{safe}" + (f"#{shard}" if shard is not None else "")


def _excluded_dir(rel: str, res: _Resolved) -> bool:
    """Prune directories an exclude pattern like ``site-packages/*`` removes wholesale."""
    return any(p.endswith("/*") and fnmatch.fnmatch(rel, p[:-2]) for p in res.exclude)


def _walk(res: _Resolved, source: str) -> Iterator[Unit]:
    """Candidate files (and scan problems) under a directory root, without following dir links."""
    if res.files is not None:
        for rel in res.files:
            if _matches(rel, res):
                yield Unit(partition_key(source, rel), source, rel)
        return
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(res.root, followlinks=False, onerror=errors.append):
        rel_dir = Path(dirpath).relative_to(res.root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        for d in list(dirnames):
            if d.startswith(".") or d == "__pycache__" or _excluded_dir(rel_dir + d, res):
                dirnames.remove(d)
            elif os.path.islink(os.path.join(dirpath, d)):
                rel = f"{rel_dir}{d}/"
                yield Unit(
                    partition_key(source, rel),
                    source,
                    rel,
                    issue="symlink_dir",
                    issue_detail="directory links are not followed (loops)",
                )
        for f in filenames:
            rel = rel_dir + f
            if not _HIDDEN.search(rel) and _matches(rel, res):
                yield Unit(partition_key(source, rel), source, rel)
    for err in errors:
        rel = Path(err.filename).relative_to(res.root).as_posix() + "/" if err.filename else "/"
        yield Unit(
            partition_key(source, rel), source, rel, issue="unreadable_dir", issue_detail=f"{type(err).__name__}: {err.strerror}"
        )


def _file_status(path: Path) -> tuple[str, str] | None:
    """(reason, detail) when ``path`` cannot be read as a regular file, else None."""
    try:
        st = os.stat(path)  # follows symlinks
    except FileNotFoundError:
        return (
            ("broken_symlink", f"target {os.readlink(path)!r} missing")
            if path.is_symlink()
            else ("missing", "file does not exist")
        )
    except OSError as exc:
        return ("unreadable", f"{type(exc).__name__}: {exc.strerror}")
    if not stat.S_ISREG(st.st_mode):
        return "not_regular_file", stat.filemode(st.st_mode)
    return None


def _read_limited(path: Path, limit: int = _MAX_READ) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(limit + 1)


def _jsonl_lines(path: Path) -> list[bytes]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        return fh.read().splitlines()


def _bucket(line: bytes, shards: int) -> int:
    return int(content_hash(line.strip()), 16) % shards


def _shard_hashes(path: Path, shards: int) -> list[str]:
    """Content hash of each bucket of a JSONL file (cached by size+mtime: files can be large)."""
    st = path.stat()
    stamp = (st.st_size, st.st_mtime_ns, shards)
    cached = _hash_cache.get(str(path))
    if cached is None or cached[0] != stamp:  # one entry per file: an edit replaces it
        buckets: list[list[bytes]] = [[] for _ in range(shards)]
        for line in _jsonl_lines(path):
            if line.strip():
                buckets[_bucket(line, shards)].append(line.strip())
        cached = _hash_cache[str(path)] = (stamp, [content_hash(b"\n".join(b)) for b in buckets])
    return cached[1]


def _with_hash(unit: Unit, res: _Resolved, spec: SourceSpec) -> Unit:
    if unit.issue is None:
        problem = _file_status(res.root / unit.path)
        if problem:
            unit = replace(unit, issue=problem[0], issue_detail=problem[1])
    if unit.issue:
        return replace(unit, content_hash=content_hash(f"{unit.issue}\0{unit.issue_detail}"))
    path = res.root / unit.path
    if spec.kind == "jsonl":
        try:
            digest = _shard_hashes(path, spec.shards)[unit.shard or 0]
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            digest = content_hash(f"unreadable\0{exc}")
        return replace(unit, content_hash=digest)
    try:
        return replace(unit, content_hash=content_hash(_read_limited(path)))
    except OSError as exc:
        return replace(unit, content_hash=content_hash(f"unreadable\0{exc}"))


def _list_units(spec: SourceSpec, res: _Resolved) -> Iterator[Unit]:
    for unit in _walk(res, spec.name):
        if spec.kind == "jsonl" and unit.issue is None:
            for shard in range(spec.shards):
                yield replace(unit, key=partition_key(spec.name, unit.path, shard), shard=shard)
        else:
            yield unit


def scan_source(spec: SourceSpec) -> list[Unit]:
    """Every unit of one source with its content hash, sorted by key."""
    res = _resolve(spec)
    return sorted((_with_hash(u, res, spec) for u in _list_units(spec, res)), key=lambda u: u.key)


def scan_sources(specs: Sequence[SourceSpec]) -> dict[str, Unit]:
    """key → unit over all sources: the desired set of seed partitions."""
    return {u.key: u for spec in specs for u in scan_source(spec)}


def find_unit(specs: Sequence[SourceSpec], key: str) -> tuple[SourceSpec, Unit]:
    """The spec and hashed unit behind one partition key, hashing only that unit."""
    name = key.split(":", 1)[0]
    spec = next((s for s in specs if s.name == name), None)
    if spec is None:
        raise KeyError(f"partition {key!r}: no configured source named {name!r}")
    res = _resolve(spec)
    for unit in _list_units(spec, res):
        if unit.key == key:
            return spec, _with_hash(unit, res, spec)
    raise KeyError(f"partition {key!r}: not found in source {name!r} any more")


def source_revision(spec: SourceSpec) -> str:
    """Commit of a git source ('' otherwise), recorded with each seed for provenance."""
    return _resolve(spec).revision if spec.kind == "git" else ""


def read_unit(spec: SourceSpec, unit: Unit) -> Iterator[Item]:
    """The code items of one unit, or one item carrying the reason it has none."""
    res = _resolve(spec)
    if unit.issue:
        yield Item(unit.path, None, res.license, unit.issue, unit.issue_detail)
        return
    path = res.root / unit.path
    if spec.kind != "jsonl":
        try:
            yield Item(unit.path, _read_limited(path), res.license)
        except OSError as exc:
            yield Item(unit.path, None, res.license, "unreadable", f"{type(exc).__name__}: {exc.strerror}")
        return
    try:
        lines = _jsonl_lines(path)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        yield Item(unit.path, None, res.license, "unreadable", f"{type(exc).__name__}: {exc}")
        return
    for lineno, line in enumerate(lines, 1):
        if line.strip() and _bucket(line, spec.shards) == unit.shard:
            yield _jsonl_item(spec, res, f"{unit.path}:{lineno}", line)


def _jsonl_item(spec: SourceSpec, res: _Resolved, where: str, line: bytes) -> Item:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return Item(where, None, res.license, "bad_json", str(exc)[:200])
    if not isinstance(record, dict):
        return Item(where, None, res.license, "bad_json", "record is not an object")
    license_ = spec.license or str(record.get("license") or "")
    lang = str(record.get(spec.lang_field) or "python").lower()
    if lang not in ("python", "py", "python3"):
        return Item(where, None, license_, "not_python", f"{spec.lang_field}={lang}")
    code = record.get(spec.code_field)
    if not isinstance(code, str):
        return Item(where, None, license_, "missing_field", f"no string field {spec.code_field!r}")
    return Item(where, code.encode("utf-8", "surrogatepass"), license_)


@dataclass(frozen=True)
class PartitionPlan:
    """How the registered partitions must change to match the sources."""

    added: list[str]
    removed: list[str]
    changed: list[str]  # registered, but content hash differs from the last observed one

    @property
    def to_observe(self) -> list[str]:
        """Partitions whose new content hash must be recorded (added + changed)."""
        return sorted(self.added + self.changed)


def plan_partitions(current: dict[str, str], registered: set[str], observed: dict[str, str]) -> PartitionPlan:
    """Diff ``current`` (key → content hash) against registered keys and last observed hashes."""
    return PartitionPlan(
        added=sorted(current.keys() - registered),
        removed=sorted(registered - current.keys()),
        changed=sorted(k for k in current.keys() & registered if observed.get(k) != current[k]),
    )
