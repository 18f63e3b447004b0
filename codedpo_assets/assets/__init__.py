"""Dagster wiring: one module per pipeline stage, assembled by :func:`build_definitions`."""


import os

import dagster as dg

from codedpo_assets.assets import checks, evaluation, generation, pass_matrix, preferences, seeds, training
from codedpo_assets.assets.resources import DuckDBStore, SeedSources, sources_from_env

# Dagster's default automation sensor starts stopped; this one runs as soon as the daemon does.
AUTOMATION_SENSOR = dg.AutomationConditionSensorDefinition(
    "codedpo_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the assets' automation conditions (eager rebuilds of changed partitions).",
)


EXECUTOR_ENV = "CODEDPO_EXECUTOR"


def build_pairs_executor() -> dg.ExecutorDefinition:
    """``$CODEDPO_EXECUTOR``: ``multiprocess`` (default: a process per step on this machine) or
    ``celery`` (each step a Celery task, run by any worker on any machine; run config
    ``execution: {config: {broker: redis://…, backend: redis://…}}``; see README 'Scale-out')."""
    kind = os.environ.get(EXECUTOR_ENV, "multiprocess")
    if kind == "multiprocess":
        return dg.multiprocess_executor
    if kind == "celery":
        from dagster_celery import celery_executor

        return celery_executor
    raise ValueError(f"{EXECUTOR_ENV}={kind!r}: choose multiprocess or celery")


# Seeds → pairs for one seed partition in one run: what the UI's "Materialize" of a partition does,
# as a job on the multiprocess executor (a step per process) or on Celery workers (a step per task,
# on any machine: the shape the k8s executors scale out too).
BUILD_PAIRS_JOB = dg.define_asset_job(
    "build_pairs",
    selection=dg.AssetSelection.assets(seeds.seeds).downstream() - dg.AssetSelection.groups("training")
    - dg.AssetSelection.assets(preferences.preference_pairs_export),
    description="seeds → … → preference_pairs for the selected seed partition(s).",
    executor_def=build_pairs_executor(),
)


def build_definitions(
    store: DuckDBStore | None = None, sources: SeedSources | None = None, generator: generation.Generator | None = None
) -> dg.Definitions:
    """All assets, jobs and sensors; resources default to $CODEDPO_DB / $CODEDPO_SOURCES / the embedded model."""
    return dg.Definitions(
        assets=[
            seeds.seed_sources,
            seeds.seeds,
            generation.prompts,
            generation.candidate_code,
            generation.generated_tests,
            pass_matrix.pass_matrix,
            preferences.verification_scores,
            preferences.trusted_tests,
            preferences.timings,
            preferences.preference_pairs,
            preferences.preference_pairs_export,
            training.dpo_checkpoint,
            evaluation.model_evaluation,
        ],
        asset_checks=[preferences.pairs_are_sound, *checks.STAGE_CHECKS],
        jobs=[seeds.prune_seed_partitions, seeds.store_maintenance, BUILD_PAIRS_JOB],
        schedules=[seeds.STORE_MAINTENANCE_SCHEDULE],
        # Runs from the UI and the automation sensor: a process per step would only add start-up to a
        # partition's ~20 short steps; partitions run in parallel as separate runs.
        executor=dg.in_process_executor,
        sensors=[seeds.seed_sources_sensor, AUTOMATION_SENSOR],
        resources={
            "store": store or DuckDBStore(),
            "sources": sources or sources_from_env(),
            "generator": generator or generation.generator_from_env(),
            "ranking": preferences.Ranking(),
            "pipes_client": dg.PipesSubprocessClient(),
        },
    )
