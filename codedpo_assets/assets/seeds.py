"""Seeds stage: partitions that track the seed sources, and the ``seeds`` asset.

``seed_sources`` is an observable source asset whose per-partition data version is the unit's
content hash. ``seed_sources_sensor`` keeps the dynamic partitions in step with the sources
(add / delete) and records a new observation only for added or changed units, so the eager
``seeds`` asset rematerializes exactly those partitions. Removed partitions get their rows
deleted by the ``prune_seed_partitions`` job.
"""

import json
from collections import Counter

import dagster as dg
from pydantic import Field

from codedpo_assets.assets.metadata import code_preview, code_version, previews, table_metadata, whole_asset
from codedpo_assets.assets.resources import DuckDBStore, SeedSources
from codedpo_assets.decontam import humaneval_decontaminator
from codedpo_assets.harvest import HarvestRules, harvest_unit
from codedpo_assets.sources import find_unit, plan_partitions, scan_sources, source_revision

SEED_PARTITION_NAME = "seeds"
SEED_PARTITIONS = dg.DynamicPartitionsDefinition(name=SEED_PARTITION_NAME)
SEED_SOURCES_KEY = dg.AssetKey("seed_sources")
DATA_VERSION_TAG = "dagster/data_version"  # the tag Dagster reads an observation's data version from


class SeedsConfig(dg.Config):
    """Harvesting rules (defaults: 3–60 line functions, 1 MB files, 10-gram decontamination at 20%)."""

    min_lines: int = Field(default=3, description="Shortest function kept, in lines.")
    max_lines: int = Field(default=60, description="Longest function kept, in lines.")
    max_file_bytes: int = Field(default=1_000_000, description="Larger files are skipped as too_large.")
    decontaminate: bool = Field(default=True, description="Drop seeds overlapping HumanEval.")
    ngram: int = Field(default=10, description="Token n-gram size for decontamination.")
    threshold: float = Field(default=0.2, description="Drop when this share of a seed's n-grams is in HumanEval.")

    def rules(self) -> HarvestRules:
        if not 1 <= self.min_lines <= self.max_lines:
            raise dg.Failure(
                f"config min_lines/max_lines: need 1 <= min_lines <= max_lines, got {self.min_lines}/{self.max_lines}"
            )
        return HarvestRules(self.min_lines, self.max_lines, self.max_file_bytes)


@dg.observable_source_asset(
    key=SEED_SOURCES_KEY,
    partitions_def=SEED_PARTITIONS,
    group_name="seeds",
    description="Seed source units (files / JSONL shards); data version = content hash.",
)
def seed_sources(context: dg.AssetExecutionContext, sources: SeedSources) -> dg.DataVersionsByPartition:
    registered = set(context.instance.get_dynamic_partitions(SEED_PARTITION_NAME))
    units = scan_sources(sources.specs())
    return dg.DataVersionsByPartition({k: u.content_hash for k, u in units.items() if k in registered})


@dg.asset(
    partitions_def=SEED_PARTITIONS,
    deps=[SEED_SOURCES_KEY],
    group_name="seeds",
    kinds={"python", "duckdb"},
    owners=["team:codedpo"],
    tags={"stage": "seeds"},
    code_version=code_version(
        __name__, "codedpo_assets.harvest", "codedpo_assets.decontam", "codedpo_assets.sources", "codedpo_assets.normalize"
    ),
    metadata=table_metadata("seeds"),
    description=(
        "Self-contained, side-effect-free stdlib-only Python functions harvested with `ast` from one "
        "source unit, deduplicated by normalized AST and decontaminated against HumanEval. "
        "Table `seeds`; skipped inputs with reasons in `seeds_rejected`."
    ),
)
def seeds(
    context: dg.AssetExecutionContext, config: SeedsConfig, store: DuckDBStore, sources: SeedSources
) -> dg.MaterializeResult:
    specs = sources.specs()
    try:
        spec, unit = find_unit(specs, context.partition_key)
    except KeyError as exc:
        raise dg.Failure(f"{exc.args[0]} — the seed sources changed; the sensor will delete this partition") from exc
    decontaminator = humaneval_decontaminator(config.ngram, config.threshold) if config.decontaminate else None
    rows, rejected = harvest_unit(spec, unit, config.rules(), decontaminator, source_revision(spec))
    db = store.get()
    written = db.replace_partition(unit.key, {"seeds": rows, "seeds_rejected": rejected})
    reasons = Counter(r["reason"] for r in rejected)
    context.log.info(f"{unit.key}: {written['seeds']} seeds, {len(rejected)} rejected {dict(reasons)}")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(unit.content_hash),
        metadata={
            **whole_asset(db, "seeds", unit.key, written["seeds"], dropped_table="seeds_rejected"),
            "rejected": dg.MetadataValue.int(len(rejected)),
            "decontaminated": dg.MetadataValue.int(reasons.get("decontaminated", 0)),
            "rejected_by_reason": dg.MetadataValue.json(dict(sorted(reasons.items()))),
            "unit_hash": unit.content_hash,
            **previews(
                db,
                "SELECT partition_key, symbol, path, n_lines, license, code FROM seeds WHERE {partition} "
                "ORDER BY partition_key, seed_id",
                unit.key,
            ),
            "partition_code": code_preview(
                db,
                "SELECT symbol, path, code FROM seeds WHERE partition_key = ? ORDER BY seed_id",
                [unit.key],
                title=f"Seeds of {unit.key}",
            ),
        },
    )


class PruneConfig(dg.Config):
    partition_keys: list[str]


@dg.op(description="Delete rows of removed seed partitions from every partitioned table.")
def prune_partitions(context: dg.OpExecutionContext, config: PruneConfig, store: DuckDBStore) -> None:
    deleted = store.get().delete_partitions(config.partition_keys)
    context.log.info(f"deleted {deleted} rows of {len(config.partition_keys)} removed partitions")


@dg.job(description="Removes rows of seed partitions whose source unit disappeared.")
def prune_seed_partitions() -> None:
    prune_partitions()


class MaintenanceConfig(dg.Config):
    keep_days: float = 30.0  # DuckLake snapshots younger than this stay readable (time travel, checkpoint lineage)


@dg.op(
    description="Store upkeep: DuckLake merges small files, expires old snapshots, deletes unreferenced files; a DuckDB file checkpoints."
)
def maintain_store(context: dg.OpExecutionContext, config: MaintenanceConfig, store: DuckDBStore) -> None:
    done = store.get().maintain(config.keep_days)
    context.log.info(f"store maintenance: {done or 'checkpoint'}")


@dg.job(description="Compacts the store and expires snapshots older than keep_days (see docs/storage.md).")
def store_maintenance() -> None:
    maintain_store()


STORE_MAINTENANCE_SCHEDULE = dg.ScheduleDefinition(job=store_maintenance, cron_schedule="0 3 * * *", default_status=dg.DefaultScheduleStatus.RUNNING,
                                                   description="Nightly store upkeep (03:00).")  # fmt: skip


def observed_versions(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, str]:
    """Last recorded content hash per partition (from ``seed_sources`` observations)."""
    versions: dict[str, str] = {}
    for key in keys:
        record = instance.get_latest_data_version_record(SEED_SOURCES_KEY, is_source=True, partition_key=key)
        tags = (record.asset_observation.tags if record and record.asset_observation else None) or {}
        if DATA_VERSION_TAG in tags:
            versions[key] = tags[DATA_VERSION_TAG]
    return versions


def observation(key: str, content_hash: str) -> dg.AssetObservation:
    return dg.AssetObservation(asset_key=SEED_SOURCES_KEY, partition=key, tags={DATA_VERSION_TAG: content_hash})


def cancel_unstarted_runs(instance: dg.DagsterInstance, keys: list[str]) -> list[str]:
    """Cancel queued (not yet launched) runs of partitions about to be deleted: launched after the
    deletion, automation's run for a just-removed file would fail ("partition not found");
    cancelled, it is never launched. Returns the cancelled run ids."""
    cancelled = []
    for key in keys:
        waiting = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
                                                         tags={"dagster/partition": key}))  # fmt: skip
        for record in waiting:
            instance.report_run_canceled(
                record.dagster_run, message=f"seed partition {key} was removed from its source before the run started"
            )
            cancelled.append(record.dagster_run.run_id)
    return cancelled


@dg.sensor(
    jobs=[prune_seed_partitions],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Keeps seed partitions in step with the sources: adds new units, deletes removed ones, flags changed ones.",
)
def seed_sources_sensor(context: dg.SensorEvaluationContext, sources: SeedSources) -> dg.SensorResult:
    units = scan_sources(sources.specs())
    current = {k: u.content_hash for k, u in units.items()}
    registered = set(context.instance.get_dynamic_partitions(SEED_PARTITION_NAME))
    observed = json.loads(context.cursor) if context.cursor else observed_versions(context.instance, sorted(registered))
    plan = plan_partitions(current, registered, observed)
    run_requests = []
    if cancelled := cancel_unstarted_runs(context.instance, plan.removed):
        context.log.info(f"cancelled {len(cancelled)} queued runs of removed partitions")
    if plan.removed:
        run_requests.append(
            dg.RunRequest(
                run_config=dg.RunConfig(ops={"prune_partitions": PruneConfig(partition_keys=plan.removed)}),
            )
        )
    if plan.added or plan.removed or plan.changed:
        context.log.info(f"seed partitions: +{len(plan.added)} -{len(plan.removed)} ~{len(plan.changed)}")
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[
            SEED_PARTITIONS.build_add_request(plan.added),
            SEED_PARTITIONS.build_delete_request(plan.removed),
        ],
        asset_events=[observation(k, current[k]) for k in plan.to_observe],
        cursor=json.dumps(current, sort_keys=True),
    )
