"""Shared Dagster wiring: the DuckDB store, its io_manager and the seed source resources, automation."""

import json
import os

import polars as pl
from dagster import AutomationCondition, Config, ConfigurableIOManager, ConfigurableResource, InputContext, OutputContext
from pydantic import Field

from codedpo_assets.sources import SourceConfigError, SourceSpec, parse_sources
from codedpo_assets.store import CATALOG_ENV, DATA_PATH_ENV, DB_ENV, DEFAULT_DB, Store

SOURCES_ENV = "CODEDPO_SOURCES"

# eager() rebuilds a partition when its upstream changes or when it newly goes missing, but skips
# partitions already missing at its first evaluation (the daemon starting after the sensor
# registered them); those are built once as well. Failed partitions are not retried in a loop.
EAGER_OR_MISSING_AT_START = AutomationCondition.eager() | (
    AutomationCondition.initial_evaluation()
    & AutomationCondition.missing()
    & ~AutomationCondition.any_deps_missing()
    & ~AutomationCondition.in_progress()
).with_label("missing_at_start")


class DuckDBStore(ConfigurableResource):
    """Where every table lives: a DuckDB file (default) or a DuckLake (catalog + data path) that
    many processes and machines write at once. Same tables, views and SQL on both."""

    database: str = Field(default="", description=f"DuckDB file; empty means ${DB_ENV} or {DEFAULT_DB}.")
    catalog: str = Field(default="", description=f"DuckLake catalog ('postgres:dbname=… host=…' or a .ducklake file); empty means ${CATALOG_ENV}; "
                                                 "set, it selects DuckLake.")  # fmt: skip
    data_path: str = Field(default="", description=f"DuckLake data files (a directory or s3://…); empty means ${DATA_PATH_ENV}.")

    def get(self) -> Store:
        return Store(self.database or None, catalog=self.catalog or None, data_path=self.data_path or None)


class StoreIOManager(ConfigurableIOManager):
    """The code location's io_manager: no pickles. The assets write their own tables, so a value
    returned by an asset is refused; an asset that takes an upstream asset as a parameter gets that
    asset's table as a polars frame — only the partitions it depends on when partitioned."""

    store: DuckDBStore

    def handle_output(self, context: OutputContext, obj: object) -> None:
        if obj is not None:
            raise TypeError(f"{context.asset_key.to_user_string()}: assets here write their DuckDB table themselves and return a "
                            f"MaterializeResult; got a {type(obj).__name__} to store")  # fmt: skip

    def load_input(self, context: InputContext) -> pl.DataFrame:
        table = context.asset_key.path[-1]
        if context.has_asset_partitions:
            return self.store.get().query(
                f"SELECT * FROM {table} WHERE partition_key IN (SELECT unnest(?))", [list(context.asset_partition_keys)]
            )
        return self.store.get().query(f"SELECT * FROM {table}")


class SeedSource(Config):
    """One seed source; see docs/architecture.md 'Seed sources'. Validated by codedpo_assets.sources.parse_sources."""

    name: str = Field(description="Unique name; prefix of this source's partition keys.")
    kind: str = Field(description="stdlib | directory | git | jsonl")
    path: str = Field(default="", description="Directory, git checkout, or JSONL file/folder (not for stdlib).")
    include: list[str] = Field(default=list(SourceSpec.include), description="fnmatch patterns of files to harvest.")
    exclude: list[str] = Field(default=[], description="fnmatch patterns of files to skip.")
    modules: list[str] = Field(default=list(SourceSpec.modules), description="stdlib: files to use; ['*'] = all.")
    license: str = Field(default="", description="License id; empty = detect from LICENSE/COPYING.")
    shards: int = Field(default=SourceSpec.shards, description="jsonl: partitions per file (hash buckets).")
    code_field: str = Field(default=SourceSpec.code_field, description="jsonl: field holding the code.")
    lang_field: str = Field(default=SourceSpec.lang_field, description="jsonl: language field (non-Python rows skipped).")


class SeedSources(ConfigurableResource):
    """Where seeds come from. Default: a demo slice of the installed CPython standard library."""

    sources: list[SeedSource] = Field(
        default=[{"name": "stdlib", "kind": "stdlib"}],
        validate_default=True,
        description=f"Seed sources; the {SOURCES_ENV} environment variable (a JSON file) overrides the default.",
    )

    def specs(self) -> list[SourceSpec]:
        return parse_sources([s.model_dump() for s in self.sources])


def sources_from_env() -> SeedSources:
    """``SeedSources`` from the JSON file named by $CODEDPO_SOURCES, else the embedded default."""
    path = os.environ.get(SOURCES_ENV)
    if not path:
        return SeedSources()
    try:
        with open(path) as fh:
            raw = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceConfigError(f"{SOURCES_ENV}={path!r}: cannot read a JSON list of sources: {exc}") from exc
    if not isinstance(raw, list):
        raise SourceConfigError(f"{SOURCES_ENV}={path!r}: expected a JSON list of source objects")
    parse_sources(raw)  # fail early, naming the field
    return SeedSources(sources=[SeedSource(**item) for item in raw])
