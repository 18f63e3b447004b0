import os
import signal
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from codedpo_assets.store import Store


def seed_rows(key: str, n: int, version: str) -> list[dict]:
    return [
        {
            "partition_key": key, "seed_id": f"{version}-{i}", "source": "s", "source_kind": "directory",
            "path": "p.py", "symbol": f"f{i}", "code": "x" * 50, "license": "MIT", "revision": "",
            "imports": ["import math"], "n_lines": 3, "content_hash": "c", "norm_hash": f"{version}-{i}",
            "unit_hash": version, "contamination": 0.0,
        }
        for i in range(n)
    ]  # fmt: skip


def versions(store: Store, key: str) -> list[tuple[str, int]]:
    return store.query(
        "SELECT unit_hash, count(*) AS n FROM seeds WHERE partition_key = ? GROUP BY ALL ORDER BY ALL", [key]
    ).rows()


def test_replace_partition_replaces_only_that_partition_and_is_idempotent(tmp_path):
    store = Store(tmp_path / "db.duckdb")
    store.replace_partition("a", {"seeds": seed_rows("a", 3, "v1")})
    store.replace_partition("b", {"seeds": seed_rows("b", 2, "v1")})
    store.replace_partition("a", {"seeds": seed_rows("a", 1, "v2")})
    store.replace_partition("a", {"seeds": seed_rows("a", 1, "v2")})
    assert versions(store, "a") == [("v2", 1)]
    assert versions(store, "b") == [("v1", 2)]
    part = store.read_partition("seeds", "b", ["seed_id", "imports"])  # pushdown: one partition, some columns
    assert part.columns == ["seed_id", "imports"] and part["seed_id"].to_list() == ["v1-0", "v1-1"]
    store.replace_partition("b", {"seeds": []})  # an empty result clears the partition
    assert versions(store, "b") == []


def test_failure_mid_write_rolls_back_every_table(tmp_path):
    store = Store(tmp_path / "db.duckdb")
    store.replace_partition("a", {"seeds": seed_rows("a", 3, "v1"), "seeds_rejected": [
        {"partition_key": "a", "source": "s", "path": "p.py", "symbol": None, "reason": "binary", "detail": ""}]})
    bad = [{"partition_key": "a", "source": "s", "path": "p.py", "no_such_column": 1}]
    with pytest.raises(duckdb.Error):
        store.replace_partition("a", {"seeds": seed_rows("a", 5, "v2"), "seeds_rejected": bad})
    assert versions(store, "a") == [("v1", 3)]
    assert store.query("SELECT reason FROM seeds_rejected").rows() == [("binary",)]


def test_killed_writer_leaves_previous_rows_intact(tmp_path):
    """SIGKILL a process at random points inside replace_partition: the partition is old or new, never partial."""
    db = tmp_path / "db.duckdb"
    Store(db).replace_partition("a", {"seeds": seed_rows("a", 1000, "v0")})
    writer = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_store import seed_rows
        from codedpo_assets.store import Store
        store = Store({str(db)!r})
        rows = seed_rows("a", 200_000, "v1")
        print("ready", flush=True)
        while True:
            store.replace_partition("a", {{"seeds": rows}})
    """)
    seen = set()
    for delay in (0.05, 0.3, 0.8, 1.5):
        proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = versions(Store(db), "a")
        assert state in ([("v0", 1000)], [("v1", 200_000)]), state
        seen.add(state[0][0])
    assert seen  # the loop ran; each kill left a whole version
