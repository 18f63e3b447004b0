"""Command line: ``run`` the pipeline on the configured sources, or query the database with ``sql``.

``run`` does what the sensor + automation do in ``dagster dev``, in one process: sync the seed
partitions with the sources, record observations, prune removed partitions and materialize the
partitions that are new, changed or never built. Runs land in the Dagster instance
($DAGSTER_HOME, default ``dagster_home/``), so the UI shows them afterwards.
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parent.parent
QUERIES = REPO / "sql" / "queries"


def _print_table(frame: pl.DataFrame, title: str = "") -> None:
    if title:
        print(f"\n{title}")
    with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=80, tbl_width_chars=160, tbl_hide_dataframe_shape=True):
        print(frame)


def _succeeded(result, what: str) -> bool:
    """Run succeeded and no blocking check failed; failed warning checks are printed."""
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    for e in failed:
        print(f"  check {e.asset_key.to_user_string()}:{e.check_name} failed ({e.severity.value}): {e.metadata}", file=sys.stderr)
    if not result.success or any(e.severity.value == "ERROR" for e in failed):
        print(f"FAILED: {what}; see the run in the Dagster UI", file=sys.stderr)
        return False
    return True


def run(rebuild: bool, skip_training: bool = False) -> int:
    os.environ.setdefault("DAGSTER_HOME", str(REPO / "dagster_home"))
    warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")
    import dagster as dg

    from codedpo_assets.assets import build_definitions, generation, seeds
    from codedpo_assets.assets.evaluation import QUICK_EVALUATION
    from codedpo_assets.assets.generation import QUICK_PROFILE
    from codedpo_assets.assets.training import QUICK_TRAINING
    from codedpo_assets.sources import plan_partitions, scan_sources

    started = time.monotonic()
    defs = build_definitions()
    resources = defs.resources
    store = resources["store"].get()
    instance = dg.DagsterInstance.get()
    units = scan_sources(resources["sources"].specs())
    current = {k: u.content_hash for k, u in units.items()}
    name = seeds.SEED_PARTITIONS.name
    registered = set(instance.get_dynamic_partitions(name))
    plan = plan_partitions(current, registered, seeds.observed_versions(instance, sorted(registered)))
    instance.add_dynamic_partitions(name, plan.added)
    for key in plan.removed:
        instance.delete_dynamic_partition(name, key)
    store.delete_partitions(plan.removed)
    for key in plan.to_observe:
        instance.report_runless_asset_event(seeds.observation(key, current[key]))
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and not a.is_external]
    chain = [a for a in assets if a.partitions_def is not None]
    totals = [a for a in assets if a.partitions_def is None]  # aggregates over all partitions: export, training, evaluation
    if skip_training:
        totals = [a for a in totals if a.group_names_by_key[a.key] != "training"]
    built = set(current)
    for asset in chain:
        built &= instance.get_materialized_partitions(asset.key)
    todo = sorted(current) if rebuild else sorted(set(plan.to_observe) | (current.keys() - built))
    print(f"seed partitions: {len(current)} (+{len(plan.added)} -{len(plan.removed)} ~{len(plan.changed)}); materializing {len(todo)}")
    run_config = {
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        "ops": {asset.key.path[-1]: {"config": QUICK_PROFILE} for asset in generation.SAMPLING_ASSETS},
    }
    # Three passes over the partitions; before the 2nd and 3rd the generation cache is filled for all
    # of them at once, so the model runs full batches (the assets then make no model calls).
    sampling, backend = generation.SamplingConfig(**QUICK_PROFILE), resources["generator"].get()
    by_name = {a.key.path[-1]: a for a in chain}
    passes = [("seeds", [by_name["seeds"]]), ("prompts", [by_name["prompts"]]),
              ("samples", [a for a in chain if a.key.path[-1] not in ("seeds", "prompts")])]  # fmt: skip
    merged = []
    if len(todo) == 1:  # nothing to batch across: one run for the whole chain and the export
        merged = [a for a in totals if a.group_names_by_key[a.key] != "training"]
        passes = [("chain", chain + merged)]
    for name, selection in passes:
        if name in ("prompts", "samples") and todo:
            t0 = time.monotonic()
            calls = generation.prefetch(store, backend, todo, sampling, name)
            print(f"  generated {name} for {len(todo)} partitions in one batch: {calls} model calls ({time.monotonic() - t0:.0f} s)")
        for i, key in enumerate(todo, 1):
            t0 = time.monotonic()
            config = {**run_config, "ops": {k: v for k, v in run_config["ops"].items() if k in {a.key.path[-1] for a in selection}}}
            result = dg.materialize([seeds.seed_sources, *assets, *defs.asset_checks], selection=selection, partition_key=key, instance=instance,
                                    resources=resources, run_config=config, raise_on_error=False)  # fmt: skip
            if not _succeeded(result, f"partition {key}"):
                return 1
            print(f"  [{name} {i}/{len(todo)}] {key} ({time.monotonic() - t0:.1f} s)")
    totals = [a for a in totals if a not in merged]
    never_built = [a for a in totals if not instance.get_latest_materialization_event(a.key)]
    if totals and (todo or plan.removed or never_built):
        print(f"building {', '.join(a.key.to_user_string() for a in totals)} (training and evaluation log progress)")
        result = dg.materialize([seeds.seed_sources, *assets, *defs.asset_checks], selection=totals, instance=instance, resources=resources,
                                run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}},
                                            "ops": {"model_evaluation": {"config": QUICK_EVALUATION}, "dpo_checkpoint": {"config": QUICK_TRAINING}}
                                            if not skip_training else {}},
                                raise_on_error=False)  # fmt: skip
        if not _succeeded(result, f"{[a.key.to_user_string() for a in totals]}"):
            return 1
    _print_table(store.query("SELECT * FROM seeds_summary"), "Built (seeds_summary):")
    _print_table(
        store.query("SELECT reason, count(*) AS n FROM seeds_rejected GROUP BY reason ORDER BY n DESC, reason"),
        "Rejected inputs by reason (seeds_rejected):",
    )
    _print_table(store.query((QUERIES / "generation_drops.sql").read_text()), "Generation outcomes (generation_drops):")
    _print_table(store.query("SELECT count(*) AS prompts, sum(codes) AS codes, sum(tests) AS tests, sum(cells) AS cells, "
                             "round(sum(cells_passed) / nullif(sum(cells), 0), 3) AS pass_rate FROM pass_matrix_summary"),
                 "Pass matrix (pass_matrix_summary):")  # fmt: skip
    _print_table(store.query((QUERIES / "preference_pairs_stats.sql").read_text()), "Preference pairs (preference_pairs_stats):")
    latest = store.query("SELECT checkpoint_id, path FROM dpo_checkpoint ORDER BY created_at DESC LIMIT 1").rows()
    if latest:
        _print_table(store.query("SELECT metric, base, checkpoint, change, n FROM model_evaluation_table WHERE checkpoint_id = ?", [latest[0][0]]),
                     f"Before / after training (model_evaluation_table, checkpoint {latest[0][0]}):")  # fmt: skip
    print(f"\nCheckpoint: {latest[0][1] if latest else 'none'}\nPair export: {Path('data/export').resolve()}\nDatabase: {store.path}\n"
          f"Dagster home: {os.environ['DAGSTER_HOME']}\nDone in {time.monotonic() - started:.1f} s")  # fmt: skip
    return 0


def sql(query: str | None) -> int:
    from codedpo_assets.store import Store

    if not query:
        for path in sorted(QUERIES.glob("*.sql")):
            print(f"{path.stem:40s} {path.read_text().splitlines()[0].lstrip('- ')}")
        return 0
    named = QUERIES / f"{query}.sql"
    text = named.read_text() if named.exists() else Path(query).read_text() if query.endswith(".sql") else query
    _print_table(Store().query(text))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codedpo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="sync partitions with the sources and materialize what changed")
    run_p.add_argument("--rebuild", action="store_true", help="rematerialize every partition")
    run_p.add_argument("--skip-training", action="store_true", help="stop after the pair export (no dpo_checkpoint / model_evaluation)")
    sql_p = sub.add_parser("sql", help="run a named query from sql/queries (no name: list them), a .sql file or SQL text")
    sql_p.add_argument("query", nargs="?")
    args = parser.parse_args(argv)
    return run(args.rebuild, args.skip_training) if args.command == "run" else sql(args.query)


if __name__ == "__main__":
    sys.exit(main())
