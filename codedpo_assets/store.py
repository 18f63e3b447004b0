"""The store: the same tables, views and SQL on one of two backends, partition-atomic writes.

- **DuckDB file** (default, ``$CODEDPO_DB``): embedded, no server. One writing process at a time:
  connections are opened per operation and never held during compute, and a writer finding the
  file locked retries within milliseconds (commits take turns; compute overlaps).
- **DuckLake** (``$CODEDPO_CATALOG`` + ``$CODEDPO_DATA_PATH``): a catalog in PostgreSQL (or a
  ``.ducklake`` file) and Parquet data files in a directory or ``s3://`` prefix, for many writer
  processes on many machines and readers that never wait (each query sees a snapshot). Tables are
  partitioned by ``partition_key``; a commit conflict between writers is retried.

Writers replace a partition's rows (delete + insert) inside one transaction, so a crash, a killed
process or a lost connection mid-write leaves the previous rows and a rerun is idempotent.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

DB_ENV = "CODEDPO_DB"
CATALOG_ENV = "CODEDPO_CATALOG"  # DuckLake catalog: "postgres:dbname=… host=…" or a path to a .ducklake file
DATA_PATH_ENV = "CODEDPO_DATA_PATH"  # DuckLake data files: a directory or s3://bucket/prefix/
EXTENSIONS_ENV = "CODEDPO_DUCKDB_EXTENSIONS"  # where the DuckLake/postgres/httpfs extensions are installed
DEFAULT_DB = "data/codedpo.duckdb"
LAKE = "lake"  # the attached DuckLake's name: tables are lake.<table>, `USE lake` makes that the default
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
CONFLICT_RETRIES = 30
_applied: set[str] = set()  # databases whose schema this process already applied
_lakes: dict[tuple, duckdb.DuckDBPyConnection] = {}  # one attached DuckLake per (catalog, data path) and process


class StoreConfigError(ValueError):
    """A store setting is missing or wrong; the message names it."""


def default_db_path() -> str:
    """``$CODEDPO_DB`` or ``data/codedpo.duckdb`` (relative to the working directory)."""
    return os.environ.get(DB_ENV) or DEFAULT_DB


def schema_sql() -> str:
    return (SQL_DIR / "schema.sql").read_text()


def named_query(name: str) -> str:
    """A query of sql/queries/ by name, without its closing semicolon (so it nests as a subquery)."""
    return (SQL_DIR / "queries" / f"{name}.sql").read_text().rstrip().rstrip(";")


def lake_schema_sql() -> str:
    """The same schema for DuckLake, which has no PRIMARY KEY/UNIQUE constraints: writers keep keys
    unique themselves (delete + insert by key, inserts that skip existing keys)."""
    text = re.sub(r",\s*\n\s*PRIMARY KEY \([^)]*\)", "", schema_sql())
    return re.sub(r"\s+PRIMARY KEY\b", "", text)


def _is_lock_error(exc: Exception) -> bool:
    return "lock" in str(exc).lower()


def _is_conflict(exc: Exception) -> bool:
    return isinstance(exc, duckdb.Error) and "conflict" in str(exc).lower()


def _extension_dir() -> str:
    return os.environ.get(EXTENSIONS_ENV) or str(
        Path.home() / ".cache" / "codedpo" / f"duckdb-{duckdb.__version__}" / "extensions"
    )


def _attach_lake(catalog: str, data_path: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the DuckLake attached as ``lake`` (extensions from their PyPI
    packages, never downloaded); one per process, whose cursors are the store's connections."""
    key = (catalog, data_path, os.getpid())
    if key in _lakes:
        return _lakes[key]
    try:
        import duckdb_extensions
    except ImportError as exc:  # pragma: no cover - the package is a dependency
        raise StoreConfigError(
            f"{CATALOG_ENV} is set but the DuckLake extensions are not installed (pip install duckdb-extension-ducklake)"
        ) from exc
    conn = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "extension_directory": _extension_dir(),
        }
    )
    needed = ["ducklake"] + (["postgres"] if catalog.startswith("postgres:") else []) + (["httpfs"] if "://" in data_path else [])
    for name in needed:
        duckdb_extensions.import_extension(name, con=conn)
        conn.execute(f"LOAD {name}")
    if not catalog.startswith("postgres:"):
        Path(catalog).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if "://" not in data_path:
        Path(data_path).mkdir(parents=True, exist_ok=True)
    try:
        conn.execute(f"ATTACH {_quote('ducklake:' + catalog)} AS {LAKE} (DATA_PATH {_quote(data_path)})")
    except duckdb.Error as exc:
        detail = _redacted(str(exc))  # the driver echoes the connection string, password included
        raise StoreConfigError(
            f"{CATALOG_ENV}={_redacted(catalog)!r} / {DATA_PATH_ENV}={data_path!r}: cannot attach the DuckLake: {detail}"
        ) from None
    conn.execute(f"USE {LAKE}")
    _lakes[key] = conn
    return conn


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _redacted(catalog: str) -> str:
    return re.sub(r"(password=)[^\s\"']+", r"\1***", catalog)


class Store:
    """Handle on the database; cheap to create, opens connections only when used.

    ``catalog`` / ``data_path`` (default ``$CODEDPO_CATALOG`` / ``$CODEDPO_DATA_PATH``) select
    DuckLake; otherwise ``path`` (default ``$CODEDPO_DB`` or data/codedpo.duckdb) is a DuckDB file.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, catalog: str | None = None, data_path: str | None = None,
                 lock_timeout_s: float = 120.0) -> None:  # fmt: skip
        self.catalog = os.environ.get(CATALOG_ENV, "") if catalog is None else catalog
        self.data_path = os.environ.get(DATA_PATH_ENV, "") if data_path is None else data_path
        self.lock_timeout_s = lock_timeout_s
        if self.catalog:
            if not self.data_path:
                raise StoreConfigError(f"{DATA_PATH_ENV} (store.data_path) is required with a DuckLake catalog ({CATALOG_ENV} is set): "
                                       "a directory or s3://bucket/prefix/ for the Parquet files")  # fmt: skip
            self.backend = "ducklake"
            self.path = f"ducklake:{_redacted(self.catalog)} (data {self.data_path})"
        else:
            self.backend = "duckdb"
            self.path = str(Path(path or default_db_path()).expanduser().resolve())

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection (DuckDB file: waits while another process holds the file)."""
        if self.backend == "ducklake":
            yield from self._lake_connection()
            return
        Path(self.path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.01  # writers hold the file for milliseconds (a partition's commit): poll often, never sleep long
        while True:
            try:
                conn = duckdb.connect(self.path)
                break
            except duckdb.IOException as exc:
                if not _is_lock_error(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.2)
        for private in (self.path, self.path + ".wal"):  # expected test values live here: sandbox uids must not read it
            if os.path.exists(private):
                os.chmod(private, 0o600)
        try:
            if self.path not in _applied:
                conn.execute(schema_sql())
                _applied.add(self.path)
            yield conn
        finally:
            conn.close()

    def _lake_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        base = _attach_lake(self.catalog, self.data_path)
        conn = base.cursor()  # its own connection to the process's database, sharing the attached lake
        try:
            conn.execute(f"USE {LAKE}")
            if self.path not in _applied:
                self._apply_lake_schema(conn)
                _applied.add(self.path)
            yield conn
        finally:
            conn.close()

    def _apply_lake_schema(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Schema + partitioning, retried: several processes may create the same tables at once."""
        for attempt in range(CONFLICT_RETRIES):
            try:
                conn.execute(lake_schema_sql())
                for (name,) in conn.execute(_PARTITIONED_TABLES).fetchall():
                    conn.execute(f'ALTER TABLE "{name}" SET PARTITIONED BY (partition_key)')
                return
            except duckdb.Error as exc:
                if not (_is_conflict(exc) or "already exists" in str(exc)) or attempt == CONFLICT_RETRIES - 1:
                    raise
                time.sleep(0.05 * (1 + random.random()) * (attempt + 1))

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside BEGIN … COMMIT; any exception rolls the whole write back."""
        with self.connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def retrying(self, write) -> None:
        """Run ``write(conn)`` in one transaction; on DuckLake, a commit conflict with another
        writer (they also arise on different partitions of one table) reruns the whole write."""
        for attempt in range(CONFLICT_RETRIES):
            try:
                with self.transaction() as conn:
                    write(conn)
                return
            except duckdb.Error as exc:
                if not _is_conflict(exc) or attempt == CONFLICT_RETRIES - 1:
                    raise
                time.sleep(0.02 * (1 + random.random()) * (attempt + 1))

    def replace_partition(self, key: str, tables: Mapping[str, pl.DataFrame | Sequence[dict]]) -> dict[str, int]:
        """Atomically make ``tables[name]`` the only rows of partition ``key`` in each table.

        Columns are matched by name; returns rows written per table.
        """
        frames = {name: _frame(rows) for name, rows in tables.items()}

        def write(conn: duckdb.DuckDBPyConnection) -> None:
            for name, frame in frames.items():
                conn.execute(f'DELETE FROM "{name}" WHERE partition_key = ?', [key])
                if frame.height:
                    conn.register("_incoming", frame)
                    conn.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM _incoming')
                    conn.unregister("_incoming")

        self.retrying(write)
        return {name: frame.height for name, frame in frames.items()}

    def delete_partitions(self, keys: Sequence[str]) -> int:
        """Remove the rows of partitions that no longer exist from every partitioned table."""
        if not keys:
            return 0
        deleted = [0]

        def write(conn: duckdb.DuckDBPyConnection) -> None:
            deleted[0] = 0
            for (name,) in conn.execute(_PARTITIONED_TABLES).fetchall():
                row = conn.execute(f'DELETE FROM "{name}" WHERE partition_key IN (SELECT unnest(?))', [list(keys)]).fetchone()
                deleted[0] += row[0] if row else 0

        self.retrying(write)
        return deleted[0]

    def snapshot(self, conn: duckdb.DuckDBPyConnection | None = None) -> int | None:
        """The DuckLake snapshot id now, or the one ``conn``'s open transaction reads (every commit
        makes one; ``AT (VERSION => id)`` reads the tables as they were); None on a DuckDB file,
        which keeps no history."""
        if self.backend != "ducklake":
            return None
        if conn is None:
            with self.connect() as own:
                return self.snapshot(own)
        (latest,) = conn.execute(f"SELECT max(snapshot_id) FROM ducklake_snapshots('{LAKE}')").fetchone() or (None,)
        return int(latest)

    def maintain(self, keep_days: float = 30.0) -> dict[str, int]:
        """Upkeep: DuckLake merges small adjacent files, expires snapshots older than ``keep_days``
        (time travel to them ends there) and deletes the files no kept snapshot needs; a DuckDB file
        checkpoints its WAL. Returns snapshots expired and files deleted."""
        if self.backend != "ducklake":
            with self.connect() as conn:
                conn.execute("CHECKPOINT")
            return {}
        done: dict[str, int] = {}

        def count(conn: duckdb.DuckDBPyConnection, call: str) -> int:
            return len(conn.execute(call).fetchall())

        with self.connect() as conn:
            conn.execute(f"CALL ducklake_merge_adjacent_files('{LAKE}')")
            done["snapshots_expired"] = count(
                conn,
                f"CALL ducklake_expire_snapshots('{LAKE}', older_than => now() - to_milliseconds({int(keep_days * 86_400_000)}))",
            )
            done["files_deleted"] = count(conn, f"CALL ducklake_cleanup_old_files('{LAKE}', cleanup_all => true)")
        return done

    def query(self, sql: str, params: Sequence | Mapping | None = None) -> pl.DataFrame:
        """Run SQL in the database and return the result (pushes filters down to DuckDB)."""
        with self.connect() as conn:
            return conn.execute(sql, params).pl()

    def read_partition(self, table: str, key: str, columns: Sequence[str] = ("*",)) -> pl.DataFrame:
        """One partition of one table: what downstream assets read instead of whole tables."""
        cols = ", ".join(c if c == "*" else f'"{c}"' for c in columns)
        return self.query(f'SELECT {cols} FROM "{table}" WHERE partition_key = ? ORDER BY ALL', [key])


_PARTITIONED_TABLES = (
    "SELECT table_name FROM information_schema.columns JOIN information_schema.tables USING (table_catalog, table_schema, table_name) "
    "WHERE column_name = 'partition_key' AND table_type = 'BASE TABLE' AND table_catalog = current_database() ORDER BY table_name"
)


def _frame(rows: pl.DataFrame | Sequence[dict]) -> pl.DataFrame:
    return rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(list(rows), infer_schema_length=None)
