import json
import os
import subprocess

import pytest
from conftest import module_with_function, write

from codedpo_assets.harvest import HarvestRules, harvest_unit
from codedpo_assets.sources import (
    STDLIB_DEMO_MODULES,
    SourceConfigError,
    SourceSpec,
    find_unit,
    parse_sources,
    partition_key,
    plan_partitions,
    scan_source,
    source_revision,
)

MIT = "MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy"


DEFAULT_RULES = HarvestRules()


def harvest_all(spec: SourceSpec, rules: HarvestRules = DEFAULT_RULES):
    seeds, rejected = [], []
    for unit in scan_source(spec):
        s, r = harvest_unit(spec, unit, rules)
        seeds += s
        rejected += r
    return seeds, rejected


def test_directory_units_are_files_with_stable_keys(tree):
    write(tree, "a.py", module_with_function(1))
    write(tree, "pkg/b.py", module_with_function(2))
    write(tree, "pkg/notes.txt", "not python")
    write(tree, ".hidden/c.py", module_with_function(3))
    write(tree, "pkg/__pycache__/d.py", module_with_function(4))
    write(tree, "pkg/tests/test_e.py", module_with_function(5))
    write(tree, "LICENSE", MIT)
    spec = parse_sources([{"name": "local", "kind": "directory", "path": str(tree), "exclude": ["*/tests/*"]}])[0]
    units = scan_source(spec)
    assert [u.key for u in units] == ["local:a.py", "local:pkg/b.py"]
    assert units == scan_source(spec)  # deterministic keys and hashes
    seeds, rejected = harvest_all(spec)
    assert {s["symbol"] for s in seeds} == {"scaled_norm_1", "scaled_norm_2"}
    assert {s["license"] for s in seeds} == {"MIT"} and rejected == []


def test_editing_a_file_changes_only_its_hash(tree):
    for i in range(5):
        write(tree, f"m{i}.py", module_with_function(i))
    spec = SourceSpec("local", "directory", str(tree))
    before = {u.key: u.content_hash for u in scan_source(spec)}
    write(tree, "m3.py", module_with_function(3) + "\n# edited\n")
    after = {u.key: u.content_hash for u in scan_source(spec)}
    assert [k for k in before if before[k] != after[k]] == ["local:m3.py"]


def test_bad_inputs_become_counted_reasons(tree, monkeypatch):
    write(tree, "good.py", module_with_function(0))
    (tree / "binary.py").write_bytes(b"\x7fELF\x00\x00\x01")
    (tree / "latin.py").write_bytes("s = 'caf\u00e9'\ndef f(x):\n    y = x\n    return y\n".encode("latin-1"))
    (tree / "huge.py").write_text("x = 1\n" * 2000)
    (tree / "broken.py").write_text("def f(:\n")
    os.symlink(tree / "missing.py", tree / "dangling.py")
    os.symlink(tree, tree / "loop")  # directory link back to the root
    os.mkfifo(tree / "pipe.py")
    locked = tree / "locked"
    locked.mkdir()
    write(locked, "inside.py", module_with_function(1))
    real_scandir = os.scandir

    def scandir(path="."):  # root ignores permission bits, so simulate an unreadable directory
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    spec = SourceSpec("local", "directory", str(tree))
    seeds, rejected = harvest_all(spec, HarvestRules(max_file_bytes=5000))
    assert [s["symbol"] for s in seeds] == ["scaled_norm_0"]
    got = {(r["path"], r["reason"]) for r in rejected}
    assert got == {
        ("binary.py", "binary"),
        ("latin.py", "not_utf8"),
        ("huge.py", "too_large"),
        ("broken.py", "syntax_error"),
        ("dangling.py", "broken_symlink"),
        ("loop/", "symlink_dir"),
        ("pipe.py", "not_regular_file"),
        ("locked/", "unreadable_dir"),
    }


def test_partition_keys_escape_what_dagster_forbids():
    assert partition_key("s", "a...b.py") == "s:a%2E%2E%2Eb.py"
    assert partition_key("s", "100%.py") == "s:100%25.py"
    assert partition_key("s", "x\ty.py") == "s:x%09y.py"
    assert partition_key("s", "data.jsonl", 3) == "s:data.jsonl#3"


def test_git_source_uses_tracked_files_and_records_revision(tree):
    write(tree, "tracked.py", module_with_function(1))
    write(tree, "LICENSE", MIT)
    git = ["git", "-C", str(tree), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    write(tree, "untracked.py", module_with_function(2))
    spec = parse_sources([{"name": "repo", "kind": "git", "path": str(tree)}])[0]
    assert [u.key for u in scan_source(spec)] == ["repo:tracked.py"]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert source_revision(spec) == head
    seeds, _ = harvest_all(spec)
    assert seeds[0]["license"] == "MIT"


def oss_instruct_row(i: int, lang: str = "python") -> dict:
    code = module_with_function(i).replace("\n    ", "\n").strip()
    return {"lang": lang, "raw_index": i, "index": i, "seed": code, "problem": "...", "solution": "..."}


def test_jsonl_shards_are_stable_hash_buckets(tree):
    rows = [oss_instruct_row(i) for i in range(40)] + [oss_instruct_row(99, "rust")]
    path = tree / "oss.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    spec = parse_sources([{"name": "oss", "kind": "jsonl", "path": str(path), "shards": 4, "license": "MIT"}])[0]
    units = scan_source(spec)
    assert [u.key for u in units] == [f"oss:oss.jsonl#{i}" for i in range(4)]
    seeds, rejected = harvest_all(spec)
    assert len(seeds) == 40 and all(s["path"].startswith("oss.jsonl:") for s in seeds)
    assert sorted(r["reason"] for r in rejected) == ["bad_json", "not_python"]
    # editing one record changes exactly one shard
    rows[7]["seed"] = rows[7]["seed"].replace("factor", "scale")
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    changed = [a.key for a, b in zip(units, scan_source(spec)) if a.content_hash != b.content_hash]
    assert len(changed) == 1


def test_stdlib_default_is_an_offline_demo_slice():
    spec = parse_sources([{"name": "stdlib", "kind": "stdlib"}])[0]
    units = scan_source(spec)
    assert len(units) == len(STDLIB_DEMO_MODULES) >= 8
    assert all(u.issue is None for u in units)
    _, unit = find_unit([spec], "stdlib:colorsys.py")
    seeds, _ = harvest_unit(spec, unit)
    assert "rgb_to_hsv" in {s["symbol"] for s in seeds} and seeds[0]["license"] == "PSF-2.0"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([{"kind": "directory", "path": "."}], r"sources\[0\]\.name"),
        ([{"name": "a", "kind": "ftp"}], r"sources\[0\]\.kind"),
        ([{"name": "a", "kind": "stdlib"}, {"name": "b", "kind": "directory"}], r"sources\[1\]\.path: required"),
        ([{"name": "a", "kind": "directory", "path": "/nonexistent/x"}], r"sources\[0\]\.path: .* does not exist"),
        ([{"name": "a", "kind": "stdlib", "colour": 1}], r"sources\[0\]: unknown field"),
        ([{"name": "bad name", "kind": "stdlib"}], r"sources\[0\]\.name"),
        ([{"name": "a", "kind": "stdlib"}, {"name": "a", "kind": "stdlib"}], r"duplicate source name"),
        ([{"name": "a", "kind": "jsonl", "path": ".", "shards": 0}], r"sources\[0\]\.shards"),
    ],
)
def test_bad_source_config_names_the_field(raw, field):
    with pytest.raises(SourceConfigError, match=field):
        parse_sources(raw)


def test_git_kind_requires_a_checkout(tree):
    with pytest.raises(SourceConfigError, match=r"sources\[0\]\.path: .* not a git checkout"):
        parse_sources([{"name": "g", "kind": "git", "path": str(tree)}])


def test_plan_partitions_diffs_keys_and_hashes():
    plan = plan_partitions({"a": "1", "b": "2", "c": "3"}, {"a", "b", "d"}, {"a": "1", "b": "old"})
    assert (plan.added, plan.removed, plan.changed, plan.to_observe) == (["c"], ["d"], ["b"], ["b", "c"])
