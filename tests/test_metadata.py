"""What asset pages show: schemas from sql/schema.sql, code versions that follow the source,
rounded numbers, inline previews that keep code readable, totals across partitions."""

import sys

import dagster as dg
import polars as pl

from codedpo_assets.assets.metadata import EXCERPT, code_preview, code_version, column_schema, frame_table, rounded, whole_asset
from codedpo_assets.store import Store


def test_column_schema_follows_the_schema_file_with_its_comments():
    columns = {c.name: c for c in column_schema("pass_matrix").columns}
    assert columns["status"].description == "pass | fail | error | timeout | crash"
    assert columns["limit_ms"].type == "double" and columns["limit_ms"].constraints.nullable  # added by an ALTER too
    assert columns["limit_ms"].description.startswith(
        "CPU limit the cell ran under"
    )  # the CREATE block's comment, not the migration's
    assert not columns["partition_key"].constraints.nullable
    assert [c.name for c in column_schema("pipeline_summary").columns][:3] == ["step", "stage", "source_table"]  # views too
    # the UI renders descriptions as markdown and drops what looks like a tag: brackets go as entities
    assert "&lt;source&gt;" in {c.name: c for c in column_schema("seeds").columns}["partition_key"].description


def test_code_version_changes_with_the_source_and_only_then(tmp_path, monkeypatch):
    (tmp_path / "stage_mod.py").write_text("X = 1\n")
    (tmp_path / "corepkg").mkdir()
    (tmp_path / "corepkg" / "__init__.py").write_text("")
    (tmp_path / "corepkg" / "a.py").write_text("A = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = code_version("stage_mod", "corepkg")
    assert code_version("stage_mod", "corepkg") == first
    (tmp_path / "corepkg" / "b.py").write_text("B = 2\n")  # a package: every file counts
    second = code_version("stage_mod", "corepkg")
    (tmp_path / "stage_mod.py").write_text("X = 2\n")
    assert len({first, second, code_version("stage_mod", "corepkg")}) == 3
    sys.modules.pop("corepkg", None)


def test_numbers_are_rounded_for_people():
    assert rounded(0.26548672566371684) == 0.2655 and rounded(1234.56789) == 1234.5679
    assert rounded(1.234567e-7) == 1.235e-07 and rounded(0) == 0.0


def test_preview_keeps_code_whole_up_to_an_excerpt():
    short, long = "def f():\n    return 1\n", "x = 1\n" * 200
    table = frame_table(pl.DataFrame({"code": [short, long], "score": [0.123456789, 2.0], "n": [1, 2]}))
    rows = [r.data for r in table.records]
    assert rows[0]["code"] == short and rows[0]["score"] == 0.1235
    assert rows[1]["code"].startswith(long[:EXCERPT]) and rows[1]["code"].endswith(f"(+{len(long) - EXCERPT} chars)")
    assert [c.name for c in table.schema.columns] == ["code", "score", "n"]


def test_whole_asset_beside_each_partition(tmp_path):
    store = Store(tmp_path / "db.duckdb")
    row = {"prompt_id": "p", "code_id": "c", "test_id": "t", "code_index": 0, "test_index": 0, "status": "pass", "passed": True,
           "verified": True, "cpu_time_ns": 1, "detail": "", "limit_ms": 1.0}  # fmt: skip
    for key, n in (("a", 2), ("b", 3)):
        store.replace_partition(
            key, {"pass_matrix": [{**row, "partition_key": key, "test_id": f"t{i}", "test_index": i} for i in range(n)]}
        )
    meta = whole_asset(store, "pass_matrix", "a", 2, kept="passed")
    assert meta["partition_rows"].value == 2 and meta["partition"].value == "a"
    (whole,) = [r.data for r in meta["all_partitions"].value.records]  # a table: never charted as a rising tally
    assert whole == {"partitions": 2, "rows": 5, "kept": 5, "dropped": 0}
    assert not any(isinstance(v, (dg.IntMetadataValue, dg.FloatMetadataValue)) for k, v in meta.items() if k != "partition_rows")


def test_code_preview_keeps_newlines_and_indentation(tmp_path):
    store = Store(tmp_path / "db.duckdb")
    program = "def add(a, b):\n    total = a\n    return total + b\n"
    md = code_preview(store, "SELECT 'p1' AS prompt_id, 2 AS multiplicity, ? AS code", [program], title="Kept").value
    assert md.startswith("**Kept**") and "prompt_id: `p1` · multiplicity: `2`" in md
    assert f"```python\n{program}\n```" in md


def test_whole_asset_counts_drops_kept_apart_and_partitions_with_only_drops(tmp_path):
    store = Store(tmp_path / "db.duckdb")
    skipped = {"prompt_id": "p", "kind": "correctness", "reason": "no_trusted_tests", "confidence": None}
    for key in ("a", "b", "c"):  # three built partitions, none with a pair
        store.replace_partition(key, {"preference_pairs_skipped": [{**skipped, "partition_key": key}]})
    meta = whole_asset(store, "preference_pairs", "c", 0, dropped_table="preference_pairs_skipped")
    (whole,) = [r.data for r in meta["all_partitions"].value.records]
    assert whole == {"partitions": 3, "rows": 0, "kept": 0, "dropped": 3}
