"""The DuckDB store: one database file, schema from ``sql/``, partition-atomic writes.

Writers replace a partition's rows (delete + insert) inside one transaction, so a crash or an
exception mid-write leaves the previous rows and a rerun is idempotent. Connections are opened
per operation and never held during compute: DuckDB allows one writing process per file.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

DB_ENV = "CODEDPO_DB"
DEFAULT_DB = "data/codedpo.duckdb"
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_applied: set[str] = set()  # database files whose schema this process already applied


def default_db_path() -> str:
    """``$CODEDPO_DB`` or ``data/codedpo.duckdb`` (relative to the working directory)."""
    return os.environ.get(DB_ENV) or DEFAULT_DB


def schema_sql() -> str:
    return (SQL_DIR / "schema.sql").read_text()


def _is_lock_error(exc: Exception) -> bool:
    return "lock" in str(exc).lower()


class Store:
    """Handle on the database file; cheap to create, opens connections only when used."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_timeout_s: float = 120.0) -> None:
        self.path = str(Path(path or default_db_path()).expanduser().resolve())
        self.lock_timeout_s = lock_timeout_s

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; waits (with jittered backoff) while another process holds the file."""
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

    def replace_partition(self, key: str, tables: Mapping[str, pl.DataFrame | Sequence[dict]]) -> dict[str, int]:
        """Atomically make ``tables[name]`` the only rows of partition ``key`` in each table.

        Columns are matched by name; returns rows written per table.
        """
        frames = {name: _frame(rows) for name, rows in tables.items()}
        with self.transaction() as conn:
            for name, frame in frames.items():
                conn.execute(f'DELETE FROM "{name}" WHERE partition_key = ?', [key])
                if frame.height:
                    conn.register("_incoming", frame)
                    conn.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM _incoming')
                    conn.unregister("_incoming")
        return {name: frame.height for name, frame in frames.items()}

    def delete_partitions(self, keys: Sequence[str]) -> int:
        """Remove the rows of partitions that no longer exist from every partitioned table."""
        if not keys:
            return 0
        deleted = 0
        with self.transaction() as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.columns JOIN information_schema.tables "
                "USING (table_catalog, table_schema, table_name) "
                "WHERE column_name = 'partition_key' AND table_type = 'BASE TABLE' ORDER BY table_name"
            ).fetchall()
            for (name,) in tables:
                row = conn.execute(f'DELETE FROM "{name}" WHERE partition_key IN (SELECT unnest(?))', [list(keys)]).fetchone()
                deleted += row[0] if row else 0
        return deleted

    def query(self, sql: str, params: Sequence | Mapping | None = None) -> pl.DataFrame:
        """Run SQL in the database and return the result (pushes filters down to DuckDB)."""
        with self.connect() as conn:
            return conn.execute(sql, params).pl()

    def read_partition(self, table: str, key: str, columns: Sequence[str] = ("*",)) -> pl.DataFrame:
        """One partition of one table: what downstream assets read instead of whole tables."""
        cols = ", ".join(c if c == "*" else f'"{c}"' for c in columns)
        return self.query(f'SELECT {cols} FROM "{table}" WHERE partition_key = ? ORDER BY ALL', [key])


def _frame(rows: pl.DataFrame | Sequence[dict]) -> pl.DataFrame:
    return rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(list(rows), infer_schema_length=None)
