"""What every asset page shows: the column schema of its table (from sql/schema.sql), previews of
real rows as Dagster tables (rendered inline, unlike images) and code as code, rounded numbers,
the whole asset beside each partition, and a code version taken from the source so the UI marks assets stale after a change."""

import hashlib
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl

from codedpo_assets.store import schema_sql

EXCERPT = 600  # characters of code shown in a preview cell; longer text ends with how much was cut
CODE_CHARS = 3000  # characters of one program in a code preview


def code_version(*modules: str) -> str:
    """Hash of the source of the named modules (a package: every file in it) and of the schema:
    the stage's asset module plus the pure core it runs and the tables and views it writes, so any
    change there marks the asset stale in the UI."""
    digest = hashlib.sha256(schema_sql().encode())
    for name in modules:
        spec = find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"code version: no source for module {name!r}")
        origin = Path(spec.origin)
        files = sorted(origin.parent.glob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _comments(sql: str, table: str) -> dict[str, str]:
    """Column → its trailing ``--`` comment in the table's CREATE block and its ALTERs."""
    out: dict[str, str] = {}
    block = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \((.*?)\n\);", sql, re.DOTALL)
    lines = (block.group(1).splitlines() if block else []) + re.findall(
        rf"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS (.*)", sql
    )
    for line in lines:  # the CREATE block first: an ALTER's comment is about migrating, kept only for columns it alone defines
        if (m := re.match(r"\s*(\w+)\s+[A-Z][^-]*--\s*(.+)$", line)) and not m.group(2).startswith("databases made before"):
            out.setdefault(m.group(1), m.group(2).strip())
    return out


@lru_cache(maxsize=1)
def _catalog() -> dict[str, list[tuple[str, str, bool]]]:
    """Every table's and view's columns (name, type, nullable) as DuckDB types them, from one
    in-memory database with the schema applied (once per process: definitions import this)."""
    with duckdb.connect() as conn:
        conn.execute(schema_sql())
        rows = conn.execute("SELECT table_name, column_name, lower(data_type), is_nullable = 'YES' FROM information_schema.columns "
                            "ORDER BY table_name, ordinal_position").fetchall()  # fmt: skip
    out: dict[str, list[tuple[str, str, bool]]] = {}
    for table, *column in rows:
        out.setdefault(table, []).append(tuple(column))
    return out


def _literal_markdown(text: str) -> str:
    """The UI renders descriptions as markdown: it drops anything that looks like an HTML tag
    (``<source>:<path>`` read ``:``) and turns ``_*`` pairs into italics. Entities and escapes show
    the text as written."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("*", "\\*").replace("_", "\\_")  # heldout_*, efficiency_* read as written, not in italics


def column_schema(table: str) -> dg.TableSchema:
    """The table's (or view's) columns with the schema file's comments as descriptions."""
    notes = {name: _literal_markdown(text) for name, text in _comments(schema_sql(), table).items()}
    return dg.TableSchema(columns=[dg.TableColumn(name, dtype, description=notes.get(name), constraints=dg.TableColumnConstraints(nullable=nullable))
                                   for name, dtype, nullable in _catalog()[table]])  # fmt: skip


def table_metadata(table: str) -> dict[str, Any]:
    """Definition metadata that names the asset's table and its columns."""
    return {"dagster/column_schema": column_schema(table), "dagster/table_name": table}


def rounded(value: float, digits: int = 4) -> float:
    """A float for the UI: a few significant decimals, not 0.26548672566371684."""
    value = float(value)
    return round(value, digits) if abs(value) >= 1 else float(f"{value:.{digits}g}")  # below 1: significant digits


def _cell(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return rounded(value)
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= EXCERPT else f"{text[:EXCERPT]}… (+{len(text) - EXCERPT} chars)"


def frame_table(frame: pl.DataFrame) -> dg.TableMetadataValue:
    """A frame as a Dagster table: the UI renders it inline on the asset page (images need a click),
    long text kept whole up to an excerpt, floats rounded."""
    schema = dg.TableSchema(columns=[dg.TableColumn(name, str(dtype).lower()) for name, dtype in frame.schema.items()])
    return dg.MetadataValue.table(records=[dg.TableRecord({k: _cell(v) for k, v in row.items()}) for row in frame.iter_rows(named=True)],
                                  schema=schema)  # fmt: skip


def preview(db, sql: str, params: Sequence | None = None, limit: int = 8) -> dg.TableMetadataValue:
    """Real rows of ``sql`` (at most ``limit``) as an inline table."""
    return frame_table(db.query(f"SELECT * FROM ({sql}) LIMIT {int(limit)}", list(params or [])))


def code_preview(db, sql: str, params: Sequence | None = None, limit: int = 4, title: str = "") -> dg.MarkdownMetadataValue:
    """Rows of ``sql`` whose last column is code, as markdown: each row's other columns on one line,
    then its code in a python block (monospace, newlines and indentation kept; a table cell flattens
    them). Up to ``CODE_CHARS`` per block."""
    frame = db.query(f"SELECT * FROM ({sql}) LIMIT {int(limit)}", list(params or []))
    *fields, code = frame.columns
    parts = [f"**{title}**"] if title else []
    for row in frame.iter_rows(named=True):
        text = str(row[code] or "")
        cut = f"\n# … {len(text) - CODE_CHARS} more characters" if len(text) > CODE_CHARS else ""
        parts.append(" · ".join(f"{k}: `{_cell(row[k])}`" for k in fields) + f"\n```python\n{text[:CODE_CHARS]}{cut}\n```")
    return dg.MetadataValue.md("\n\n".join(parts) if frame.height else "no rows")


def whole_asset(
    db, table: str, key: str, partition_rows: int, kept: str = "TRUE", dropped_table: str | None = None
) -> dict[str, dg.MetadataValue]:
    """What a partition's materialization says about itself and about the whole asset. The asset
    page shows the latest materialization, so the whole asset's figures are there too — as a table:
    a number would be charted by the Plots tab as a tally rising in build order. ``kept``: the
    condition of rows that go on (drop rows keep a reason); ``dropped_table``: where an asset keeps
    its drops apart (seeds_rejected, preference_pairs_skipped) — they count as dropped, and a
    partition with only drops still counts as built."""
    rows, kept_n, parts = db.query(
        f"SELECT count(*), count(*) FILTER (WHERE {kept}), count(DISTINCT partition_key) FROM {table}"
    ).row(0)
    dropped = rows - kept_n
    if dropped_table:
        dropped += int(db.query(f"SELECT count(*) FROM {dropped_table}").item())
        parts = db.query(
            f"SELECT count(*) FROM (SELECT partition_key FROM {table} UNION SELECT partition_key FROM {dropped_table})"
        ).item()
    totals = pl.DataFrame({"partitions": [int(parts)], "rows": [int(rows)], "kept": [int(kept_n)], "dropped": [int(dropped)]})
    return {
        "partition": dg.MetadataValue.text(key),
        "partition_rows": dg.MetadataValue.int(partition_rows),
        "all_partitions": frame_table(totals),
    }


def previews(db, sql: str, key: str, limit: int = 8) -> dict[str, dg.TableMetadataValue]:
    """``preview``: rows of the whole asset (every partition); ``partition_preview``: this
    partition's. ``sql`` has ``{partition}`` where the partition condition goes."""
    return {
        "preview": preview(db, sql.format(partition="TRUE"), [], limit),
        "partition_preview": preview(db, sql.format(partition="partition_key = ?"), [key], limit),
    }


def numbers(values: Mapping[str, float], digits: int = 4) -> dict[str, dg.MetadataValue]:
    """Numeric metadata, rounded (the Plots tab charts them over materializations)."""
    return {k: dg.MetadataValue.float(rounded(v, digits)) for k, v in values.items()}
