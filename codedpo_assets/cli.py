"""Command line: ``run`` the pipeline on the configured sources, or query the database with ``sql``.

``run`` does what the sensor + automation do in ``dagster dev``, in one process: sync the seed
partitions with the sources, record observations, prune removed partitions and materialize the
partitions that are new, changed or never built — as runs of the code location's named jobs
(``build_pairs_quick`` per partition, ``summarize``, ``train_and_evaluate_quick``), recorded in the
Dagster instance ($DAGSTER_HOME, default ``dagster_home/``), so the UI shows and re-executes them.
The terminal gets one progress line per stage and a summary; everything else goes to a log file.
"""

import argparse
import os
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import polars as pl
import yaml

if TYPE_CHECKING:  # dagster is imported where it is used: `codedpo sql` and --help start fast
    import dagster as dg

REPO = Path(__file__).resolve().parent.parent
QUERIES = REPO / "sql" / "queries"


def _table(frame: pl.DataFrame, title: str = "") -> str:
    with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=80, tbl_width_chars=160, tbl_hide_dataframe_shape=True):
        return f"\n{title}\n{frame}" if title else str(frame)


class Console:
    """The terminal of a ``run``: progress lines and the summary. Everything else the run prints —
    Dagster's run logs, Hugging Face progress bars, TRL's per-step dicts, warnings, and the output of
    the training subprocess — goes to the log file (``--verbose``: everything stays on the terminal
    and there is no log file). Progress lines come from any process of the run through a file that
    a thread follows."""

    def __init__(self, log_path: Path, verbose: bool):
        self.log_path, self.verbose = log_path, verbose
        self.progress_path = log_path.with_suffix(".progress")
        self.stop, self.lock, self.pending = threading.Event(), threading.Lock(), ""
        self.following: TextIO | None = None

    def __enter__(self) -> "Console":
        from codedpo_assets.progress import PROGRESS_ENV

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = [os.dup(1), os.dup(2)]
        self.terminal = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        self.log: TextIO | None = None if self.verbose else open(self.log_path, "a", buffering=1, encoding="utf-8")
        try:
            if self.log:
                os.dup2(self.log.fileno(), 1)  # file descriptors: child processes and C extensions write there too
                os.dup2(self.log.fileno(), 2)
            self.progress_path.write_text("")
            self.following = open(self.progress_path, encoding="utf-8")
            os.environ[PROGRESS_ENV] = str(self.progress_path)
            self.follower = threading.Thread(target=self._follow, daemon=True)
            self.follower.start()
        except BaseException:
            self._restore()
            raise
        return self

    def _follow(self) -> None:
        while not self.stop.wait(0.5):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        """Print the complete progress lines published so far (a line still being written waits)."""
        with self.lock:
            if self.following is None or self.following.closed:  # before __enter__ opened it, after _restore closed it
                return
            text = self.pending + self.following.read()
            done, _, self.pending = text.rpartition("\n")
            if done:
                self.terminal.write(done + "\n")

    def say(self, text: str = "") -> None:
        """A line for the terminal (and the log), after every progress line published so far."""
        self._drain()
        self.terminal.write(text + "\n")
        if self.log:
            self.log.write(text + "\n")

    def _restore(self) -> None:
        """Terminal back on fds 1 and 2, whatever happened; every descriptor this console opened closed."""
        from codedpo_assets.progress import PROGRESS_ENV

        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os.dup2(self.saved[0], 1)
            os.dup2(self.saved[1], 2)
            for fd in self.saved:
                os.close(fd)
            os.environ.pop(PROGRESS_ENV, None)
            if self.following:
                with self.lock:
                    self.following.close()
            self.progress_path.unlink(missing_ok=True)
            self.terminal.close()
            if self.log:
                self.log.close()

    def __exit__(self, kind, error, trace) -> None:
        try:
            self.stop.set()
            self.follower.join(timeout=10)
            if error is not None and self.log:  # the traceback goes to the terminal after the restore; the log keeps it too
                self.log.write("".join(traceback.format_exception(kind, error, trace)))
        finally:
            self._restore()


def _succeeded(result, what: str, console: Console) -> bool:
    """Run succeeded and no blocking check failed; failed warning checks are printed."""
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    for e in failed:
        console.say(f"  check {e.asset_key.to_user_string()}:{e.check_name} failed ({e.severity.value}): {e.metadata}")
    for step, error in _step_errors(result):
        console.say(f"  {step}: {error}")
    if not result.success or any(e.severity.value == "ERROR" for e in failed):
        console.say(
            f"FAILED: {what} (run {result.run_id}); the error is in {console.log_path if console.log else 'the output above'} and in the Dagster UI"
        )
        return False
    return True


def _step_errors(result) -> list[tuple[str, str]]:
    """(step, the error's own message) of each failed step: the cause in one line, not a stack trace
    (a GenerationError or dg.Failure says what to fix; Dagster wraps it in its own frames)."""
    out = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause and "dagster" in error.cls_name.lower():  # the user code's error, not the wrapper
                error = error.cause
            head = (error.message.strip().splitlines() or [error.cls_name])[0]
            qualified, _, text = head.partition(": ")  # "package.module.Class: text"
            out.append((event.step_key or "", text if qualified.endswith(error.cls_name) and text else head))
    return out


def _row_count(materialization: "dg.AssetMaterialization") -> int:
    value = materialization.metadata["partition_rows"].value
    return value if isinstance(value, int) else 0


def _attributed(instance):
    """The instance, with the runs this process executes attributed to the UI's code location (workspace.yaml):
    with that origin the Overview timeline lists them under their job, as it lists runs the UI or
    the daemon launched (an in-process run carries no origin by itself)."""
    from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    (entry,) = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    module = entry["python_module"]
    location = ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=module["module_name"], working_directory=str(REPO)),
        module["location_name"],
    )
    create = instance.create_run_for_job

    def create_with_origin(job_def, **kwargs):
        origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job_def.name)
        return create(job_def, **{"remote_job_origin": origin, **kwargs})

    instance.create_run_for_job = create_with_origin
    return instance


def _ops(config: dict, names: list[str]) -> dict:
    """A job's run config cut to the selected assets' ops, with every run event logged (to the log file)."""
    return {
        "loggers": {"console": {"config": {"log_level": "DEBUG"}}},
        "ops": {k: v for k, v in config["ops"].items() if k in names},
    }


# `run`'s passes over the partitions. The generation pass is one run per contiguous range of
# partitions (its assets' single-run backfill policy): all their model requests in one batched call,
# inside a run the UI shows. The other passes run one partition per run.
PASSES = (("seeds", ["seeds"]), ("generation", ["prompts", "candidate_code", "generated_tests"]),
          ("sandbox and pairs", ["pass_matrix", "seed_reference", "verification_scores", "trusted_tests", "timings", "preference_pairs"]))  # fmt: skip
RANGED = ("generation",)
CHAIN = [name for _, names in PASSES for name in names]  # build_pairs_quick's assets, in order


def run(rebuild: bool, skip_training: bool = False, verbose: bool = False, profile: str = "quick") -> int:
    os.environ.setdefault("DAGSTER_HOME", str(REPO / "dagster_home"))
    log_path = Path("data/logs").resolve() / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    from codedpo_assets.generation.backends import GenerationError

    with Console(log_path, verbose) as console:
        if not verbose:
            console.say(f"log: {log_path} (run logs, third-party output, warnings)")
        try:
            return _run(console, rebuild, skip_training, profile)
        except GenerationError as exc:  # the model cannot be set up (missing/corrupt part, cache): one line, store untouched
            console.say(f"error: {exc}")
            return 2


def _run(console: Console, rebuild: bool, skip_training: bool, profile: str) -> int:
    warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")
    import dagster as dg

    from codedpo_assets.assets import PROFILES, build_definitions, job_name, sampling_run_config, seeds, training_run_config
    from codedpo_assets.assets.training import TRAINING_SKIPPED_TAG
    from codedpo_assets.progress import Progress
    from codedpo_assets.sources import plan_partitions, scan_sources

    started = time.monotonic()
    defs = build_definitions()
    resources = defs.resources or {}
    store = resources["store"].get()
    instance = _attributed(dg.DagsterInstance.get())
    units = scan_sources(resources["sources"].specs())
    current = {k: u.content_hash for k, u in units.items()}
    name = seeds.SEED_PARTITION_NAME
    registered = set(instance.get_dynamic_partitions(name))
    plan = plan_partitions(current, registered, seeds.observed_versions(instance, sorted(registered)))
    instance.add_dynamic_partitions(name, plan.added)
    for key in plan.removed:
        instance.delete_dynamic_partition(name, key)
    store.delete_partitions(plan.removed)
    for key in plan.to_observe:
        instance.report_runless_asset_event(seeds.observation(key, current[key]))
    if profile not in PROFILES:
        console.say(f"error: --profile {profile!r}: choose one of {', '.join(PROFILES)}")
        return 2
    build, train = (
        defs.resolve_job_def(job_name("build_pairs", profile)),
        defs.resolve_job_def(job_name("train_and_evaluate", profile)),
    )
    built = set(current)
    for name in CHAIN:
        built &= instance.get_materialized_partitions(dg.AssetKey(name))
    todo = sorted(current) if rebuild else sorted(set(plan.to_observe) | (current.keys() - built))
    console.say(
        f"seed partitions: {len(current)} (+{len(plan.added)} -{len(plan.removed)} ~{len(plan.changed)}); materializing {len(todo)}"
    )
    engine = resources["generator"].get().identity.split(":")[0].split("@")[0]
    order = instance.get_dynamic_partitions(seeds.SEED_PARTITION_NAME)
    runs: dict[str, list[str]] = {}
    walls: dict[str, float] = {"setup (definitions, partitions, model)": time.monotonic() - started}
    passes = PASSES if len(todo) > 1 else [("chain", CHAIN)] if todo else []  # one partition: one run for its chain
    for stage, names in passes:
        progress, cells, done, t0 = Progress(stage, len(todo), "partitions"), 0, 0, time.monotonic()
        progress.update(0)
        for keys in _ranges(todo, order) if stage in RANGED else [[k] for k in todo]:
            result = build.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(n) for n in names], raise_on_error=False,
                                              run_config=_ops(sampling_run_config(profile), names), **_partitions(keys))  # fmt: skip
            runs.setdefault(build.name, []).append(result.run_id)
            what = keys[0] if len(keys) == 1 else f"{keys[0]} … {keys[-1]} ({len(keys)} partitions)"
            if not _succeeded(result, f"{build.name} {what}", console):
                _summary(console, store, runs, walls, time.monotonic() - started, profile=profile)
                return 1
            if stage in RANGED:
                steps = _step_walls(instance, result.run_id).items()
                walls |= {f"{step} ({len(keys)} partitions, {engine})": s for step, s in steps if step in names}
            cells += (
                sum(_row_count(m) for m in result.asset_materializations_for_node("pass_matrix")) if "pass_matrix" in names else 0
            )
            done += len(keys)
            progress.update(done, f"{cells} cells" if cells else "")
        walls[f"{stage} assets"] = time.monotonic() - t0
    wanted = ["preference_pairs_export"] + ([] if skip_training else ["dpo_checkpoint", "model_evaluation"])
    skipped = ""  # why training was skipped (no training pairs), as the run's tag says it
    summarize = defs.resolve_job_def("summarize")
    for job, names in ((summarize, ["pipeline_summary"]), (train, wanted)):
        never_built = [n for n in names if not instance.get_latest_materialization_event(dg.AssetKey(n))]
        if todo or plan.removed or never_built:
            console.say(f"running {job.name}: {', '.join(names)}")
            config = _ops(training_run_config(profile), names) if job is train else _ops({"ops": {}}, names)
            result = job.execute_in_process(
                instance=instance, asset_selection=[dg.AssetKey(n) for n in names], run_config=config, raise_on_error=False
            )
            runs.setdefault(job.name, []).append(result.run_id)
            walls |= _step_walls(instance, result.run_id)
            if not _succeeded(result, f"{job.name}", console):
                _summary(console, store, runs, walls, time.monotonic() - started, profile=profile)
                return 1
            skipped = skipped or result.dagster_run.tags.get(TRAINING_SKIPPED_TAG, "")
    _summary(console, store, runs, walls, time.monotonic() - started, skipped, profile)
    return 0


def _ranges(keys: list[str], order: list[str]) -> list[list[str]]:
    """``keys`` split into runs of consecutive partitions in the partitions' own order (a run
    materializes a key range: a gap would rebuild the partitions in it)."""
    position = {k: i for i, k in enumerate(order)}
    out: list[list[str]] = []
    for key in sorted(keys, key=position.__getitem__):
        if out and position[key] == position[out[-1][-1]] + 1:
            out[-1].append(key)
        else:
            out.append([key])
    return out


def _partitions(keys: list[str]) -> dict:
    """execute_in_process arguments for one partition or a range of them."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    if len(keys) == 1:
        return {"partition_key": keys[0]}
    return {"tags": {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}}


def _step_walls(instance, run_id: str) -> dict[str, float]:
    """Each step's wall time in a run, as the Dagster UI's run timeline shows it."""
    return {s.step_key: s.end_time - s.start_time for s in instance.get_run_step_stats(run_id) if s.start_time and s.end_time}


def _summary(
    console: Console,
    store,
    runs: dict[str, list[str]],
    walls: dict[str, float],
    elapsed_s: float,
    skipped: str = "",
    profile: str = "quick",
) -> None:
    """What was built and where: totals per stage, drops, pairs, the before/after table (or why there
    is none), wall time per stage, paths. Printed after a failed step too: what was built so far."""
    from codedpo_assets.assets.generation import SAMPLING_PROFILES
    from codedpo_assets.assets.shortfall import no_pairs_report

    say = console.say
    say(
        _table(
            store.query("SELECT stage, items, dropped, not_sampled, partitions FROM pipeline_summary ORDER BY step"),
            f"Built, all partitions (pipeline_summary; not_sampled: seeds beyond the {profile} profile's max_seeds = "
            f"{SAMPLING_PROFILES[profile]['max_seeds']} per partition; pairs dropped: prompts that yielded none):",
        )
    )
    rejected = store.query("SELECT reason, count(*) AS n FROM seeds_rejected GROUP BY reason ORDER BY n DESC, reason")
    if rejected.height:
        say(_table(rejected, "Rejected inputs by reason (seeds_rejected):"))
    say(_table(store.query((QUERIES / "generation_drops.sql").read_text()), "Generation outcomes (generation_drops):"))
    say(
        _table(
            store.query("SELECT * FROM seed_reference_by_source"),
            "Seeds as references, by source (seed_reference_by_source; drifted tasks: `codedpo sql drifted_tasks`):",
        )
    )
    say(_table(store.query((QUERIES / "preference_pairs_stats.sql").read_text()), "Preference pairs (preference_pairs_stats):"))
    if skipped:
        say(f"\nTraining skipped, no training pairs: {no_pairs_report(store)}")
    elif not store.query("SELECT count(*) FROM preference_pairs WHERE kind = 'correctness'").item():
        say(f"\nNo correctness pairs: {no_pairs_report(store)}")
    latest = (
        [] if skipped else store.query("SELECT checkpoint_id, path FROM dpo_checkpoint ORDER BY created_at DESC LIMIT 1").rows()
    )
    if latest:
        table = store.query("SELECT metric, n, base, base_ci, checkpoint, checkpoint_ci, change, change_ci, verdict FROM model_evaluation_table "
                            "WHERE checkpoint_id = ?", [latest[0][0]])  # fmt: skip
        say(_table(table, f"Before / after training, 95 % intervals (model_evaluation_table, checkpoint {latest[0][0]}):"))
    if walls:
        frame = pl.DataFrame({"stage": list(walls), "wall_s": [round(v, 1) for v in walls.values()]})
        say(_table(frame.with_columns(share=(pl.col("wall_s") / elapsed_s * 100).round(0).cast(pl.Int64).cast(pl.String) + " %"),
                   "Wall time by stage (this run):"))  # fmt: skip
    say(
        f"\nRuns (Dagster UI: `make ui`, Runs page): {'; '.join(f'{job} x{len(ids)} (last {ids[-1][:8]})' for job, ids in runs.items()) or 'none'}"
    )
    say(f"Checkpoint: {latest[0][1] if latest else 'none'}\nPair export: {Path('data/export').resolve()}\nDatabase: {store.path}\n"
        f"Dagster home: {os.environ['DAGSTER_HOME']}\nLog: {console.log_path if console.log else 'none (--verbose)'}\nDone in {elapsed_s:.1f} s")  # fmt: skip


def sql(query: str | None) -> int:
    from codedpo_assets.store import Store

    if not query:
        for path in sorted(QUERIES.glob("*.sql")):
            print(f"{path.stem:40s} {path.read_text().splitlines()[0].lstrip('- ')}")
        return 0
    named = QUERIES / f"{query}.sql"
    text = named.read_text() if named.exists() else Path(query).read_text() if query.endswith(".sql") else query
    print(_table(Store().query(text)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codedpo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="sync partitions with the sources and materialize what changed")
    run_p.add_argument("--rebuild", action="store_true", help="rematerialize every partition")
    run_p.add_argument(
        "--profile", default="quick", help="the jobs' profile: quick (make run), loop (benchmarks/loop_gain.py) or paper"
    )
    run_p.add_argument(
        "--skip-training", action="store_true", help="stop after the pair export (no dpo_checkpoint / model_evaluation)"
    )
    run_p.add_argument(
        "--verbose", action="store_true", help="print everything (run logs, progress bars, warnings) instead of progress lines"
    )
    sql_p = sub.add_parser("sql", help="run a named query from sql/queries (no name: list them), a .sql file or SQL text")
    sql_p.add_argument("query", nargs="?")
    args = parser.parse_args(argv)
    return run(args.rebuild, args.skip_training, args.verbose, args.profile) if args.command == "run" else sql(args.query)


if __name__ == "__main__":
    sys.exit(main())
