"""The loop that shows its gain: the whole product on the embedded model, then base vs trained, with intervals.

Run: .venv/bin/python benchmarks/loop_gain.py [--profile loop|paper] [--store DIR] [--tasks N] [--ablation sft|none] [--eval-limit N]

seeds → prompts → candidates + tests → pass matrix → seed reference → scores → pairs → DPO →
evaluation, as the product's own Dagster jobs (``build_pairs_<profile>``, ``summarize``,
``train_and_evaluate_<profile>``: the UI launches the same ones) into a store of its own
(``--store``, default ``data/loop-gain``: its DuckDB file, Dagster home, export and checkpoints).
The seeds are standard-library modules taken in name order until the profile's cap per module gives
``--tasks`` tasks. **Resumable**: a rerun after an interrupt skips every partition already built,
reuses the generation cache, and the base model's HumanEval replies are cached by the model's hash.

Evaluation, before vs after on the same items, greedy: HumanEval (all 164) pass@1 with Newcombe's
paired interval and McNemar's exact p; held-out preference accuracy on real samples (a correct and
a wrong program of the same even HumanEval problem, CodeGen-16B's, ``CODEDPO_REAL_SAMPLES``): how
often the length-normalized log-likelihood ranks the correct one higher; the paper's efficiency
measure where both models are correct (in ``model_evaluation``). Nothing of HumanEval feeds
training: seeds are decontaminated by the product's 10-gram check, and the pairs are checked again
here (the report says how many overlap). Ablation: the same pairs, SFT on the chosen side.
Last line:
``loop-gain: pairs N (correctness C, efficiency E); pass@1 base X trained Y change D [lo, hi]; heldout_pref base A trained B change D2 [lo2, hi2]; base_model DIR; checkpoint DIR``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from codedpo_assets.intervals import newcombe_change_interval, sign_test_p

PROFILES = ("loop", "paper")


def choose_modules(tasks: int, per_module: int) -> list[str]:
    """Standard-library files, in name order, until their seeds (at most ``per_module`` each) give ``tasks``."""
    from codedpo_assets.harvest import harvest_unit
    from codedpo_assets.sources import SourceSpec, scan_source

    spec = SourceSpec(name="stdlib", kind="stdlib", modules=("*",))
    chosen, total = [], 0
    for unit in sorted(scan_source(spec), key=lambda u: u.path):
        kept = len(harvest_unit(spec, unit)[0])
        if kept:
            chosen.append(unit.path)
            total += min(kept, per_module) if per_module else kept
        if total >= tasks:
            break
    return chosen


def mcnemar(before, after) -> tuple[int, int, float]:
    """(items only the trained model gets right, only the base gets right, McNemar's exact two-sided p)."""
    b, a = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    return int((a > b).sum()), int((a < b).sum()), sign_test_p(a - b)


def paired(before, after) -> dict:
    """A paired comparison of 0/1 items: both means, the change with Newcombe's interval, McNemar."""
    up, down, p = mcnemar(before, after)
    low, high = newcombe_change_interval(before, after)
    base, trained = float(np.mean(before)), float(np.mean(after))
    return {"n": len(before), "base": base, "trained": trained, "change": trained - base, "low": low, "high": high,
            "up": up, "down": down, "p": p}  # fmt: skip


def last_line(pairs: dict, pass1: dict, pref: dict, base_dir: str, checkpoint_dir: str) -> str:
    """The result, in one line whose form the tests hold (figures in percentage points)."""

    def pts(x: float) -> str:
        return f"{100 * x:.1f}"

    return (f"loop-gain: pairs {pairs['total']} (correctness {pairs['correctness']}, efficiency {pairs['efficiency']}); "
            f"pass@1 base {pts(pass1['base'])} trained {pts(pass1['trained'])} change {100 * pass1['change']:+.1f} "
            f"[{100 * pass1['low']:+.1f}, {100 * pass1['high']:+.1f}]; heldout_pref base {pts(pref['base'])} trained {pts(pref['trained'])} "
            f"change {100 * pref['change']:+.1f} [{100 * pref['low']:+.1f}, {100 * pref['high']:+.1f}]; base_model {base_dir}; checkpoint {checkpoint_dir}")  # fmt: skip


def heldout_examples(exclude: set[str]) -> list[dict]:
    """Pairs with known truth that no training pair comes from: per even HumanEval problem of the real
    samples, its most-written correct program vs its most-written wrong one, asked as the pipeline
    asks. ``exclude``: normalized hashes of every training program (none may be here)."""
    import real_samples
    from ranking_real_bench import load_cases

    from codedpo_assets.decontam import humaneval_problems
    from codedpo_assets.eval_formats import task
    from codedpo_assets.training import chat_example

    if not real_samples.available():
        return []
    official = {p["task_id"]: p for p in humaneval_problems()}
    out = []
    for case in load_cases():
        order = np.argsort(-case.weights, kind="stable")
        right = [i for i in order if case.correct[i]]
        wrong = [i for i in order if not case.correct[i]]
        if right and wrong:
            chosen, rejected = case.problem.codes[right[0]], case.problem.codes[wrong[0]]
            disjoint({case.hashes[right[0]], case.hashes[wrong[0]]}, exclude, case.problem.task_id)
            out.append(chat_example({"prompt": task(official[case.problem.task_id]), "chosen": chosen, "rejected": rejected}))
    return out


def disjoint(heldout: set[str], training: set[str], where: str) -> None:
    """Stop when a held-out program (normalized hash) is also a training program: it would measure recall, not preference."""
    if heldout & training:
        raise SystemExit(f"held-out pair of {where} shares a program with the training pairs")


def train_and_evaluate(profile: str, arm: str, eval_limit: int) -> float:
    """One arm trained on the exported pairs and evaluated, as the product's ``train_and_evaluate``
    job (the DPO arm, and the ablation's with the same steps, learning rate and length); skipped
    when that arm's checkpoint of this pair set is evaluated already (resume). Returns its minutes."""
    import dagster as dg

    from codedpo_assets.assets import build_definitions, job_name, training_run_config
    from codedpo_assets.store import Store

    version = json.loads(Path("data/export/manifest.json").read_text())["pair_set_version"]
    done = Store().query("SELECT count(*) FROM dpo_checkpoint c WHERE arm = ? AND pair_set_version = ? "
                         "AND EXISTS (SELECT 1 FROM model_evaluation e WHERE e.checkpoint_id = c.checkpoint_id)", [arm, version]).item()  # fmt: skip
    if done:
        print(f"{arm}: a checkpoint of pair set {version} is evaluated already", flush=True)
        return 0.0
    config = training_run_config(profile)
    config["ops"]["dpo_checkpoint"]["config"]["arm"] = arm
    if eval_limit:
        config["ops"]["model_evaluation"]["config"]["limit"] = eval_limit
    job = build_definitions().resolve_job_def(job_name("train_and_evaluate", profile))
    started = time.monotonic()
    print(f"{arm}: training and evaluating ({job.name})", flush=True)
    result = job.execute_in_process(instance=dg.DagsterInstance.get(), run_config=config, raise_on_error=False,
                                    asset_selection=[dg.AssetKey("dpo_checkpoint"), dg.AssetKey("model_evaluation")])  # fmt: skip
    if not result.success:
        raise SystemExit(f"{arm}: run {result.run_id} failed (its log is in the Dagster home of --store)")
    minutes = (time.monotonic() - started) / 60
    print(f"{arm}: trained and evaluated in {minutes:.1f} min", flush=True)
    return minutes


def preference_accuracy(model_dir: str, examples: list[dict]) -> np.ndarray:
    """Per pair, 1 when the length-normalized log-likelihood ranks the correct program higher (0.5: tie)."""
    from codedpo_assets.evaluation import model_logps

    logps = model_logps(model_dir, examples, per_token=True)
    d = logps[:, 0] - logps[:, 1]
    return (d > 0) + 0.5 * (d == 0)


def contaminated(pairs: list[dict]) -> int:
    """Training pairs whose prompt or code overlaps HumanEval by the product's 10-gram check."""
    from codedpo_assets.decontam import humaneval_decontaminator

    check = humaneval_decontaminator()
    return sum(any(check.is_contaminated(check.check(pair[k])) for k in ("prompt", "chosen", "rejected")) for pair in pairs)


def _environment(store: Path, modules: list[str]) -> None:
    """Everything the run writes goes under ``store``; the converted embedded model is shared."""
    from codedpo_assets.generation.embedded import MODEL_CACHE_ENV

    store.mkdir(parents=True, exist_ok=True)
    home = store / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    sources = store / "sources.json"
    sources.write_text(json.dumps([{"name": "stdlib", "kind": "stdlib", "modules": modules}], indent=1) + "\n")
    os.environ.setdefault(MODEL_CACHE_ENV, str(REPO / "data" / "models"))
    os.environ |= {"DAGSTER_HOME": str(home), "CODEDPO_SOURCES": str(sources), "HF_HUB_OFFLINE": "1"}
    os.environ.pop("CODEDPO_DB", None)
    os.chdir(store)  # the product's relative paths (data/codedpo.duckdb, data/export, data/checkpoints) land here


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile", choices=PROFILES, default="loop", help="loop: 2 CPU cores; paper: the paper's N, M and temperature (a GPU)"
    )
    parser.add_argument(
        "--store", default=str(REPO / "data" / "loop-gain"), help="where this run's store, export and checkpoints live"
    )
    parser.add_argument(
        "--tasks", type=int, default=180, help="tasks to write (standard-library modules are added until there are this many)"
    )
    parser.add_argument("--ablation", choices=("sft", "none"), default="sft", help="a second arm trained on the same pairs")
    parser.add_argument("--eval-limit", type=int, default=0, help="HumanEval problems (0: all 164; fewer only for a smoke run)")
    args = parser.parse_args()

    from codedpo_assets.assets.generation import SAMPLING_PROFILES

    started = time.monotonic()
    modules = choose_modules(args.tasks, SAMPLING_PROFILES[args.profile]["max_seeds"])
    print(
        f"seeds: {len(modules)} standard-library modules ({modules[0]} … {modules[-1]}) for about {args.tasks} tasks", flush=True
    )
    _environment(Path(args.store).resolve(), modules)
    from codedpo_assets import cli

    if cli.run(rebuild=False, skip_training=True, profile=args.profile) != 0:
        raise SystemExit("the product's run failed: see its summary above")
    for arm in ["dpo"] + ([] if args.ablation == "none" else [args.ablation]):
        train_and_evaluate(args.profile, arm, args.eval_limit)
    report(started)


def report(started: float) -> None:
    import polars as pl

    from codedpo_assets.store import Store
    from codedpo_assets.train_job import read_pairs

    db = Store()
    kinds = dict(db.query("SELECT kind, count(*) FROM preference_pairs GROUP BY kind").rows())
    counts = {"total": sum(kinds.values()), "correctness": kinds.get("correctness", 0), "efficiency": kinds.get("efficiency", 0)}
    tasks = db.query("SELECT count(DISTINCT prompt_id) FROM preference_pairs WHERE kind = 'correctness'").item()
    export = Path("data/export/preference_pairs.parquet")
    train = read_pairs(export, "train")
    dropped = db.query("SELECT count(*) FROM seeds_rejected WHERE reason = 'decontaminated'").item()
    print(f"\npairs: {counts} from {tasks} tasks; training split {len(train)}; decontamination: {dropped} seeds dropped, "
          f"{contaminated(train)} training pairs overlap HumanEval", flush=True)  # fmt: skip
    version = json.loads(Path("data/export/manifest.json").read_text())["pair_set_version"]
    checkpoints = db.query("SELECT checkpoint_id, path, base_model, arm FROM dpo_checkpoint c WHERE pair_set_version = ? AND EXISTS "
                           "(SELECT 1 FROM model_evaluation e WHERE e.checkpoint_id = c.checkpoint_id) ORDER BY created_at", [version]).rows()  # fmt: skip
    dpo = next(c for c in reversed(checkpoints) if c[3] == "dpo")
    samples = db.query("SELECT checkpoint_id, role, task_id, passed FROM model_evaluation_samples WHERE sample = 0").to_pandas()
    pass1 = {}
    for checkpoint_id, *_ in checkpoints:
        mine = (
            samples[samples.checkpoint_id == checkpoint_id].pivot(index="task_id", columns="role", values="passed").astype(float)
        )
        pass1[checkpoint_id] = paired(mine["base"].to_numpy(), mine["checkpoint"].to_numpy())
    from codedpo_assets.normalize import normalized_hash

    programs = {normalized_hash(p[side]) for p in train for side in ("chosen", "rejected")}
    examples = heldout_examples(programs)
    base_acc = preference_accuracy(dpo[2], examples)
    prefs = {c[0]: paired(base_acc, preference_accuracy(c[1], examples)) for c in checkpoints}
    for checkpoint_id, _, _, arm in checkpoints:
        a, b = pass1[checkpoint_id], prefs[checkpoint_id]
        print(f"{arm} ({checkpoint_id}): pass@1 {100 * a['base']:.1f} → {100 * a['trained']:.1f} on {a['n']} "
              f"({a['up']} up, {a['down']} down, McNemar p = {a['p']:.3f}); held-out preference {100 * b['base']:.1f} → "
              f"{100 * b['trained']:.1f} on {b['n']} pairs ({b['up']} up, {b['down']} down, p = {b['p']:.3f})")  # fmt: skip
    table = db.query(
        "SELECT metric, n, base, checkpoint, change, change_ci, verdict FROM model_evaluation_table WHERE checkpoint_id = ?",
        [dpo[0]],
    )
    with pl.Config(tbl_rows=30, tbl_width_chars=200):
        print(table)
    print(
        f"wall time: {(time.monotonic() - started) / 60:.1f} min (this invocation; a resumed run reuses what earlier ones built)"
    )
    print(last_line(counts, pass1[dpo[0]], prefs[dpo[0]], dpo[2], dpo[1]))


if __name__ == "__main__":
    main()
