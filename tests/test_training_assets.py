"""dpo_checkpoint (through Dagster Pipes) and model_evaluation on a tiny offline model, end to end."""

import json
import re
from pathlib import Path

import dagster as dg
import pytest
from conftest import FakeServer

from codedpo_assets.assets import build_definitions
from codedpo_assets.assets.evaluation import model_evaluation
from codedpo_assets.assets.generation import Generator, candidate_code, generated_tests, prompts
from codedpo_assets.assets.pass_matrix import pass_matrix
from codedpo_assets.assets.preferences import (
    pairs_are_sound,
    preference_pairs,
    preference_pairs_export,
    timings,
    trusted_tests,
    verification_scores,
)
from codedpo_assets.assets.resources import DuckDBStore, SeedSource, SeedSources
from codedpo_assets.assets.seeds import seed_sources, seeds
from codedpo_assets.assets.shortfall import no_pairs_report
from codedpo_assets.assets.training import TRAINING_SKIPPED_TAG, dpo_checkpoint
from codedpo_assets.cli import _step_errors

QUERIES = Path(__file__).resolve().parent.parent / "sql" / "queries"
SEED = "def add(a, b):\n    total = a\n    total += b\n    return total\n"
CHAIN = [
    seeds,
    prompts,
    candidate_code,
    generated_tests,
    pass_matrix,
    verification_scores,
    trusted_tests,
    timings,
    preference_pairs,
]


def _defs(tmp_path, tree, url):
    return build_definitions(DuckDBStore(database=str(tmp_path / "db.duckdb")),
                             SeedSources(sources=[SeedSource(name="local", kind="directory", path=str(tree))]),
                             Generator(backend="openai", base_url=url, model="fake"))  # fmt: skip


def _config(tmp_path, model_dir) -> dict:
    export = str(tmp_path / "export")
    return {"ops": {
        "preference_pairs_export": {"config": {"directory": export}},
        "dpo_checkpoint": {"config": {"base_model": str(model_dir), "pairs_dir": export, "checkpoints_dir": str(tmp_path / "ckpt"),
                                      "max_steps": 2, "learning_rate": 1e-3}},
        "model_evaluation": {"config": {"limit": 2, "n_samples": 2, "ks": [1, 2], "max_new_tokens": 8, "pairs_dir": export}},
    }}  # fmt: skip


def test_pairs_to_checkpoint_to_before_after_table(tree, tmp_path, tiny_model_dir):
    server = FakeServer()
    try:
        keys = []
        for i in range(3):  # three partitions → three prompts → three pairs (one prompt held out)
            (tree / f"calc{i}.py").write_text(SEED)
            keys.append(f"local:calc{i}.py")
        defs = _defs(tmp_path, tree, server.url)
        sampling = {name: {"config": {"n_samples": 4}} for name in ("prompts", "candidate_code", "generated_tests")}
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("seeds", keys)
            for key in keys:
                assert dg.materialize([seed_sources, *CHAIN], selection=CHAIN, partition_key=key, instance=instance,
                                      resources=defs.resources, run_config={"ops": sampling}).success  # fmt: skip
            final = [preference_pairs_export, dpo_checkpoint, model_evaluation]
            result = dg.materialize([seed_sources, *CHAIN, *final], selection=final, instance=instance, resources=defs.resources,
                                    run_config=_config(tmp_path, tiny_model_dir))  # fmt: skip
            assert result.success
            manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
            assert manifest["splits"] == {"train": 2, "heldout": 1}
            db = defs.resources["store"].get()
            (ckpt,) = db.query(
                "SELECT checkpoint_id, path, arm, pairs, steps, pair_set_version, final_loss FROM dpo_checkpoint"
            ).rows()
            assert (
                ckpt[2] == "dpo"
                and ckpt[3] == 2
                and ckpt[4] == 2
                and ckpt[5] == manifest["pair_set_version"]
                and ckpt[6] is not None
            )
            metrics = {m for (m,) in db.query("SELECT DISTINCT metric FROM dpo_checkpoint_curves").rows()}
            assert {"loss", "rewards/accuracies", "rewards/margins"} <= metrics
            from transformers import AutoModelForCausalLM

            AutoModelForCausalLM.from_pretrained(ckpt[1])
            mats = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
            assert "data:image/png;base64," in mats["dpo_checkpoint"]["training_curves"].value
            meta = mats["model_evaluation"]
            table = {r.data["metric"]: r.data for r in meta["before_after"].records}  # Dagster tables: rendered inline
            ci = {r.data["metric"]: r.data for r in meta["before_after_intervals"].records}
            # two tables that fit the page beside the UI's sidebar: values with n and verdict, and their intervals
            assert [c.name for c in meta["before_after"].schema.columns] == [
                "metric",
                "n",
                "base",
                "checkpoint",
                "change",
                "verdict",
            ]
            assert [c.name for c in meta["before_after_intervals"].schema.columns] == ["metric", "base", "checkpoint", "change"]
            assert (
                {
                    "humaneval_pass@1_greedy",
                    "humaneval_pass@2",
                    "heldout_reward_accuracy",
                    "efficiency_problems",
                    "humaneval_nonempty",
                    "humaneval_defines_entry",
                    "groundtruth_reward_accuracy",
                    "groundtruth_logp_accuracy",
                    "groundtruth_reward_margin",
                }
                <= set(table)
                == set(ci)
            )
            # the tiny model writes no function: every problem's canonical solution vs its failing program is a ground-truth pair,
            # and the replies that define nothing are shown as such
            assert table["groundtruth_reward_accuracy"]["n"] == 2 and table["groundtruth_reward_accuracy"]["base"] == "0.500"
            assert table["humaneval_defines_entry"]["base"] == "0.000" and ci["humaneval_defines_entry"]["base"].startswith(
                "0.000.."
            )
            assert float(ci["humaneval_defines_entry"]["base"].split("..")[1]) > 0.5  # 0 of 2: an upper bound, not a point
            assert table["humaneval_nonempty"]["n"] == 2
            assert meta["prompt_format"].value == "chat_function" and meta["groundtruth_pairs"].value == 2
            reward = table["heldout_reward_accuracy"]  # one held-out pair: whatever the change, no verdict but "not enough data"
            assert reward["base"] == "0.500" and reward["n"] == 1 and reward["verdict"] == "not enough data"
            assert re.fullmatch(
                r"-?\d\.\d{3}\.\.-?\d\.\d{3}", ci["heldout_reward_accuracy"]["change"]
            )  # an interval even at n = 1
            greedy = table["humaneval_pass@1_greedy"]
            assert (
                greedy["n"] == 2
                and ci["humaneval_pass@1_greedy"]["base"]
                and greedy["verdict"] in ("better", "worse", "not enough data")
            )
            assert re.fullmatch(r"\d+", table["efficiency_problems"]["checkpoint"])  # a count: no interval
            assert table["efficiency_problems"]["verdict"] is None and ci["efficiency_problems"]["checkpoint"] is None
            for metric in table:  # both models' numbers as metadata: the Plots tab compares them across materializations
                assert f"checkpoint/{metric}" in meta and (metric.startswith("efficiency") or f"base/{metric}" in meta)
                assert meta[f"checkpoint/{metric}"].value == round(meta[f"checkpoint/{metric}"].value, 4)
            assert meta["base/heldout_reward_accuracy"].value == 0.5 and meta["checkpoint_id"].value == ckpt[0]
            assert isinstance(meta["checkpoint_path"], dg.PathMetadataValue) and meta["checkpoint_path"].value == ckpt[1]
            run_id = db.query("SELECT run_id FROM dpo_checkpoint").item()
            assert isinstance(meta["checkpoint_run"], dg.DagsterRunMetadataValue) and meta["checkpoint_run"].value == run_id
            assert meta["settings"].value["limit"] == 2 and meta["settings"].value["ks"] == [1, 2]
            assert (meta["humaneval_problems"].value, meta["heldout_pairs"].value) == (2, 1)
            import ctranslate2

            engines = {m.split(":")[0] for (m,) in db.query("SELECT DISTINCT model FROM model_evaluation").rows()}
            assert engines == {
                f"ctranslate2-{ctranslate2.__version__}-float32"
            }  # both models sampled by the CPU engine, exact weights
            rows = dict(db.query("SELECT metric || '/' || role, n FROM model_evaluation").rows())
            assert rows["humaneval_pass@2/checkpoint"] == 2 and rows["heldout_logp_accuracy/base"] == 1
            stored = db.query(
                "SELECT * FROM model_evaluation WHERE role = 'checkpoint' AND metric = 'heldout_reward_accuracy'"
            ).row(0, named=True)
            assert (
                stored["ci_method"] == "wilson"
                and stored["ci_low"] <= stored["value"] <= stored["ci_high"]
                and stored["verdict"].startswith("not enough data")
            )
            assert stored["change"] == pytest.approx(stored["value"] - 0.5) and stored["change_ci_low"] is not None
            view = db.query(
                "SELECT metric, base, checkpoint, change, n, base_ci, checkpoint_ci, change_ci, verdict FROM model_evaluation_table"
            )
            assert view.columns[:5] == ["metric", "base", "checkpoint", "change", "n"] and len(view) == len(
                table
            )  # the CLI's columns still work
            assert (
                db.query("SELECT count(*) FROM model_evaluation_samples").item() == 2 * 2 * 3
            )  # roles × problems × (greedy + 2)
            assert db.query("SELECT count(*) FROM model_evaluation_table").item() >= 5
            for query in sorted(QUERIES.glob("*.sql")):  # every documented inspection query runs on a full database
                db.query(query.read_text())
            assert len(db.query((QUERIES / "pair_provenance.sql").read_text())) == 3
    finally:
        server.close()


def test_zero_pairs_skip_training_with_the_reason_and_write_no_checkpoint(tree, tmp_path, tiny_model_dir):
    defs = _defs(tmp_path, tree, "http://127.0.0.1:9/v1")
    final = [preference_pairs_export, dpo_checkpoint, model_evaluation]
    with dg.instance_for_test() as instance:
        result = dg.materialize([seed_sources, *CHAIN, *final, pairs_are_sound], selection=final, instance=instance, resources=defs.resources,
                                run_config=_config(tmp_path, tiny_model_dir), raise_on_error=False)  # fmt: skip
        assert result.success  # nothing to train on is an outcome, not an error
        assert not [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        (export,) = result.get_asset_materialization_events()
        assert export.asset_key.path[-1] == "preference_pairs_export"
        assert "No pairs exported" in export.materialization.metadata["note"].value
        (check,) = result.get_asset_check_evaluations()  # zero pairs is not "sound": a warning that does not block
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN and check.metadata["pairs"].value == 0
        (observed,) = [
            e.event_specific_data.asset_observation for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"
        ]
        reason = observed.metadata["training_skipped"].value
        assert "no training pairs" in reason and "upstream `seeds` produced no usable rows" in reason
        tag = instance.get_run_by_id(result.run_id).tags[TRAINING_SKIPPED_TAG]
        assert tag.startswith("no training pairs") and len(tag) <= 200
        skipped = [e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]
        assert skipped == ["model_evaluation"]  # it never ran, so it cannot have failed
    assert not (tmp_path / "ckpt").exists()
    assert defs.resources["store"].get().query("SELECT count(*) FROM dpo_checkpoint").item() == 0


def test_no_pairs_report_counts_reasons_and_says_what_to_change(tmp_path):
    db = DuckDBStore(database=str(tmp_path / "db.duckdb")).get()
    rows = [{"partition_key": "p", "prompt_id": f"q{i}", "kind": "correctness", "reason": r, "confidence": None}
            for i, r in enumerate(["no_trusted_tests", "no_trusted_tests", "fewer_than_two_candidates"])]  # fmt: skip
    db.replace_partition("p", {"preference_pairs_skipped": rows})
    report = no_pairs_report(db)
    assert report.startswith("upstream `seeds` produced no usable rows.")
    assert "no_trusted_tests x2 (no test was passed by the top-ranked code" in report
    assert "fewer_than_two_candidates x1 (too few distinct programs" in report


@pytest.mark.parametrize("bad", [{"arm": "ppo"}, {"arm": "kto", "batch_size": 1}])
def test_bad_training_config_is_a_clear_failure(tree, tmp_path, tiny_model_dir, bad):
    defs = _defs(tmp_path, tree, "http://127.0.0.1:9/v1")
    config = _config(tmp_path, tiny_model_dir)["ops"]["dpo_checkpoint"]
    config["config"] |= bad
    with dg.instance_for_test() as instance:
        result = dg.materialize([preference_pairs_export, dpo_checkpoint], selection=[dpo_checkpoint], instance=instance,
                                resources=defs.resources, run_config={"ops": {"dpo_checkpoint": config}}, raise_on_error=False)  # fmt: skip
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "dpo_checkpoint config" in str(failure.event_specific_data.error)
    ((step, line),) = _step_errors(result)  # what the terminal prints: the cause, without the wrapper's class
    assert step == "dpo_checkpoint" and line.startswith("dpo_checkpoint config: ") and "\n" not in line
