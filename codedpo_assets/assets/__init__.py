"""Dagster wiring: one module per pipeline stage, assembled by :func:`build_definitions`."""

import os
import warnings

import dagster as dg

from codedpo_assets.assets import (
    checks,
    evaluation,
    generation,
    pass_matrix,
    preferences,
    ranking,
    seed_reference,
    seeds,
    summary,
    training,
)
from codedpo_assets.assets.resources import EAGER_OR_MISSING_AT_START, DuckDBStore, SeedSources, StoreIOManager, sources_from_env

EXECUTOR_ENV = "CODEDPO_EXECUTOR"


def build_pairs_executor() -> dg.ExecutorDefinition:
    """``$CODEDPO_EXECUTOR``: ``in_process`` (default: a partition's ~20 short steps in one process;
    partitions run in parallel as separate runs), ``multiprocess`` (a process per step) or ``celery``
    (each step a Celery task, run by any worker on any machine; run config
    ``execution: {config: {broker: redis://…, backend: redis://…}}``; see docs/storage.md 'Scale-out')."""
    kind = os.environ.get(EXECUTOR_ENV, "in_process")
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        return dg.multiprocess_executor
    if kind == "celery":
        from dagster_celery import celery_executor

        return celery_executor
    raise ValueError(f"{EXECUTOR_ENV}={kind!r}: choose in_process, multiprocess or celery")


# build_pairs jobs hold the generation assets (one run for many partitions) and the sandbox assets (one
# partition per run): Dagster warns that such a job's own backfills take the smaller, one partition per
# run — what automation wants; a backfill of the generation assets alone from the asset graph is one run.
warnings.filterwarnings("ignore", message="Asset job .* materializes assets with varying BackfillPolicies")
PROFILES = (
    "paper",
    "quick",
    "loop",
)  # every generation/training job exists once per profile; its config is the launchpad's preset
CHAIN = (
    dg.AssetSelection.assets(seeds.seeds).downstream()
    - dg.AssetSelection.groups("training")
    - dg.AssetSelection.assets(preferences.preference_pairs_export, summary.pipeline_summary)
)


def sampling_run_config(profile: str) -> dict:
    """The build job's config: sampling values for the generation assets, and the quick profile's confidence filter."""
    values = generation.SamplingConfig().model_dump() | (generation.SAMPLING_PROFILES[profile] if profile != "paper" else {})
    ops = {asset.key.path[-1]: {"config": values} for asset in generation.SAMPLING_ASSETS}
    if profile == "quick":
        ops |= {
            asset.key.path[-1]: {"config": preferences.QUICK_FILTER}
            for asset in (preferences.timings, preferences.preference_pairs)
        }
    return {"ops": ops}


def training_run_config(profile: str) -> dict:
    return {"ops": {"dpo_checkpoint": {"config": training.TrainingConfig().model_dump() | training.TRAINING_PROFILES.get(profile, {})},
                    "model_evaluation": {"config": evaluation.EvaluationConfig().model_dump() | evaluation.EVALUATION_PROFILES.get(profile, {})}}}  # fmt: skip


def _suffix(profile: str) -> str:
    return "" if profile == "paper" else f"_{profile}"


def job_name(job: str, profile: str) -> str:
    """A job's name in a profile: build_pairs (paper), build_pairs_quick, build_pairs_loop."""
    return job + _suffix(profile)


# Seeds → pairs for one seed partition per run: what automation launches when a seed unit is new or
# changed (the paper profile), and what `codedpo run` launches (the quick profile).
BUILD_PAIRS_JOBS = [
    dg.define_asset_job(
        f"build_pairs{_suffix(profile)}",
        selection=CHAIN,
        # the paper profile is the assets' config defaults; automation cannot launch a partitioned job
        # that carries run config (Dagster refuses the combination), so only the quick job carries one
        config=sampling_run_config(profile) if profile != "paper" else None,
        description=f"seeds → … → preference_pairs for a seed partition, {profile} generation profile"
        + (" (automation launches this job for new or changed partitions)." if profile == "paper" else "."),
        executor_def=build_pairs_executor(),
        automation_condition=dg.AutomationCondition.any_job_root_assets_match(EAGER_OR_MISSING_AT_START)
        if profile == "paper"
        else None,
        tags={"profile": profile},
    )
    for profile in PROFILES
]
# Export → checkpoint → evaluation over all partitions' pairs.
TRAIN_AND_EVALUATE_JOBS = [
    dg.define_asset_job(
        f"train_and_evaluate{_suffix(profile)}",
        selection=dg.AssetSelection.assets(
            preferences.preference_pairs_export, training.dpo_checkpoint, evaluation.model_evaluation
        ),
        config=training_run_config(profile),
        description=f"preference_pairs_export → dpo_checkpoint → model_evaluation, {profile} training and evaluation settings.",
        tags={"profile": profile},
    )
    for profile in PROFILES
]
SUMMARIZE_JOB = dg.define_asset_job(
    "summarize", selection=[summary.pipeline_summary], automation_condition=dg.AutomationCondition.any_job_root_assets_match(summary.AFTER_ANY_PARTITION),
    description="pipeline_summary: totals across partitions (automation runs it after partitions change).",
)  # fmt: skip
AUTOMATED_JOBS = [job for job in [*BUILD_PAIRS_JOBS, SUMMARIZE_JOB] if job.automation_condition is not None]

# Automation launches named jobs (their runs are re-executable from the UI and have a history);
# this sensor evaluates them as soon as the daemon runs (Dagster's default sensor starts stopped).
AUTOMATION_SENSOR = dg.AutomationConditionSensorDefinition(
    "codedpo_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the jobs' automation conditions: build_pairs for new or changed seed partitions, then summarize.",
    asset_job_keys={dg.AssetJobKey(job.name) for job in AUTOMATED_JOBS},
)


def build_definitions(
    store: DuckDBStore | None = None, sources: SeedSources | None = None, generator: generation.Generator | None = None
) -> dg.Definitions:
    """All assets, jobs and sensors; resources default to $CODEDPO_DB / $CODEDPO_SOURCES / the embedded model."""
    store = store or DuckDBStore()
    return dg.Definitions(
        assets=[
            seeds.seed_sources,
            seeds.seeds,
            generation.prompts,
            generation.candidate_code,
            generation.generated_tests,
            pass_matrix.pass_matrix,
            seed_reference.seed_reference,
            preferences.verification_scores,
            preferences.trusted_tests,
            preferences.timings,
            preferences.preference_pairs,
            preferences.preference_pairs_export,
            training.dpo_checkpoint,
            evaluation.model_evaluation,
            summary.pipeline_summary,
        ],
        asset_checks=[preferences.pairs_are_sound, *checks.STAGE_CHECKS],
        jobs=[*BUILD_PAIRS_JOBS, *TRAIN_AND_EVALUATE_JOBS, SUMMARIZE_JOB, seeds.prune_seed_partitions, seeds.store_maintenance],
        schedules=[seeds.STORE_MAINTENANCE_SCHEDULE],
        # Runs of the UI's Materialize button: a process per step would only add start-up to a
        # partition's ~20 short steps; partitions run in parallel as separate runs.
        executor=dg.in_process_executor,
        sensors=[seeds.seed_sources_sensor, AUTOMATION_SENSOR],
        resources={
            "store": store,
            "io_manager": StoreIOManager(store=store),
            "sources": sources or sources_from_env(),
            "generator": generator or generation.generator_from_env(),
            "ranking": ranking.Ranking(),
            "pipes_client": dg.PipesSubprocessClient(),
        },
    )
