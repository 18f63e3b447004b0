import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import duckdb
import pytest

from codedpo_assets.store import Store, StoreConfigError


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


@pytest.fixture(params=["duckdb", "ducklake"])
def store_args(request, tmp_path) -> dict:
    """Store(**args) on each backend: a DuckDB file, and a DuckLake on a throwaway PostgreSQL."""
    if request.param == "duckdb":
        return {"path": str(tmp_path / "db.duckdb")}
    pg = request.getfixturevalue("postgres")
    return {"catalog": pg.create_database(f"t{uuid.uuid4().hex[:12]}"), "data_path": str(tmp_path / "lake")}


def test_replace_partition_replaces_only_that_partition_and_is_idempotent(store_args):
    store = Store(**store_args)
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


def test_failure_mid_write_rolls_back_every_table(store_args):
    store = Store(**store_args)
    store.replace_partition(
        "a",
        {
            "seeds": seed_rows("a", 3, "v1"),
            "seeds_rejected": [
                {"partition_key": "a", "source": "s", "path": "p.py", "symbol": None, "reason": "binary", "detail": ""}
            ],
        },
    )
    bad = [{"partition_key": "a", "source": "s", "path": "p.py", "no_such_column": 1}]
    with pytest.raises(duckdb.Error):
        store.replace_partition("a", {"seeds": seed_rows("a", 5, "v2"), "seeds_rejected": bad})
    assert versions(store, "a") == [("v1", 3)]
    assert store.query("SELECT reason FROM seeds_rejected").rows() == [("binary",)]


def test_killed_writer_leaves_previous_rows_intact(store_args):
    """SIGKILL a process at random points inside replace_partition: the partition is old or new, never partial."""
    Store(**store_args).replace_partition("a", {"seeds": seed_rows("a", 1000, "v0")})
    writer = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_store import seed_rows
        from codedpo_assets.store import Store
        store = Store(**{store_args!r})
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
        state = versions(Store(**store_args), "a")
        assert state in ([("v0", 1000)], [("v1", 200_000)]), state
        seen.add(state[0][0])
    assert seen  # the loop ran; each kill left a whole version


def _writer(args: dict, key: str, rounds: int) -> None:
    store = Store(**args)
    for r in range(rounds):
        store.replace_partition(key, {"seeds": seed_rows(key, 50, f"v{r}")})


def test_concurrent_writers_and_a_reader_on_ducklake(postgres, tmp_path):
    """4 writer processes replace their own partitions of the same table 8 times each (DuckLake
    conflicts between them are retried) while a reader queries in a loop: every write lands, every
    read succeeds and sees whole partitions only."""
    import multiprocessing

    args = {"catalog": postgres.create_database("concurrent"), "data_path": str(tmp_path / "lake")}
    Store(**args).query("SELECT 1")  # schema once, before the race
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_writer, args=(args, f"k{i}", 8)) for i in range(4)]
    for w in writers:
        w.start()
    reader, reads = Store(**args), 0
    while any(w.is_alive() for w in writers):
        counts = reader.query("SELECT partition_key, unit_hash, count(*) AS n FROM seeds GROUP BY ALL").rows()
        assert all(n == 50 for _, _, n in counts), counts  # never a partition with two versions or half a write
        reads += 1
    assert all(w.exitcode == 0 for w in writers) and reads > 0
    assert sorted(Store(**args).query("SELECT partition_key, unit_hash, count(*) FROM seeds GROUP BY ALL").rows()) == [
        (f"k{i}", "v7", 50) for i in range(4)
    ]


def test_ducklake_settings_are_named_when_missing_or_wrong(postgres, tmp_path):
    with pytest.raises(StoreConfigError, match="CODEDPO_DATA_PATH"):
        Store(catalog="postgres:dbname=x host=/nowhere")
    bad = Store(catalog=f"postgres:dbname=no_such_db host={postgres.host} port={postgres.port} user=codedpo password=hunter2",
                data_path=str(tmp_path / "lake"))  # fmt: skip
    with pytest.raises(StoreConfigError, match="CODEDPO_CATALOG") as err:
        bad.query("SELECT 1")
    assert "hunter2" not in str(err.value)  # the password is not echoed


def test_ducklake_tables_are_partitioned_and_snapshots_are_kept(postgres, tmp_path):
    store = Store(catalog=postgres.create_database("snap"), data_path=str(tmp_path / "lake"))
    store.replace_partition("a", {"seeds": seed_rows("a", 3, "v1")})
    before = store.snapshot()
    store.replace_partition("a", {"seeds": seed_rows("a", 2, "v2")})
    assert store.snapshot() > before
    assert store.query(f"SELECT unit_hash, count(*) FROM seeds AT (VERSION => {before}) GROUP BY ALL").rows() == [("v1", 3)]
    assert versions(store, "a") == [("v2", 2)]
    # small writes are inlined in the catalog; larger ones land as Parquet under the partition's directory
    store.replace_partition("b", {"seeds": seed_rows("b", 2000, "v1")})
    files = [str(p.relative_to(tmp_path)) for p in (tmp_path / "lake").rglob("*.parquet")]
    assert files and all("/seeds/partition_key=b/" in f for f in files), files


def test_maintenance_compacts_and_expires_on_ducklake(postgres, tmp_path):
    store = Store(catalog=postgres.create_database("upkeep"), data_path=str(tmp_path / "lake"))
    for r in range(5):
        store.replace_partition("b", {"seeds": seed_rows("b", 2000, f"v{r}")})
    files = lambda: len(list((tmp_path / "lake").rglob("*.parquet")))  # noqa: E731
    assert files() == 5  # every replace left its file: older snapshots still read them
    assert store.maintain(keep_days=30) == {"snapshots_expired": 0, "files_deleted": 0}  # recent history is kept
    done = store.maintain(keep_days=0)
    assert done["snapshots_expired"] > 0 and done["files_deleted"] == 4 and files() == 1
    assert versions(store, "b") == [("v4", 2000)]
    Store(str(tmp_path / "db.duckdb")).maintain()  # a DuckDB file: a checkpoint, nothing to expire
