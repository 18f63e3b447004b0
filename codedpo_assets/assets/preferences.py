"""Scoring stage: verification_scores → trusted_tests → timings → preference_pairs → export."""

import hashlib
import json
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field

from codedpo_assets.assets.generation import ASSET_ARGS, run_profile
from codedpo_assets.assets.metadata import code_preview, code_version, frame_table, previews, table_metadata, whole_asset
from codedpo_assets.assets.pass_matrix import pass_matrix, seed_imports
from codedpo_assets.assets.ranking import Decision, Ranking, decisions, matrices
from codedpo_assets.assets.resources import DuckDBStore
from codedpo_assets.assets.seed_reference import seed_reference
from codedpo_assets.assets.shortfall import no_pairs_report
from codedpo_assets.normalize import content_hash
from codedpo_assets.pairs import DEFAULT_MIN_CONFIDENCE, Pair, correctness_pair, efficiency_pair, trusted_codes
from codedpo_assets.plots import hbars, score_panels
from codedpo_assets.sandbox.timing import Timing, time_candidates
from codedpo_assets.scoring import RANKERS, ranks, self_verification_scores

SCORING_ARGS: dict[str, Any] = {**ASSET_ARGS, "group_name": "preferences",
                "code_version": code_version(__name__, "codedpo_assets.scoring", "codedpo_assets.behaviour", "codedpo_assets.calibration",
                                             "codedpo_assets.pairs", "codedpo_assets.reference", "codedpo_assets.assets.ranking",
                                             "codedpo_assets.sandbox.timing")}  # fmt: skip


@dg.asset(deps=[pass_matrix], description="Score, rank and behaviour cluster of every code (and test) per prompt, with the calibrated "
                                          "confidence in its chosen code, for every ranker side by side.",
          metadata=table_metadata("verification_scores"), **SCORING_ARGS)  # fmt: skip
def verification_scores(context: dg.AssetExecutionContext, store: DuckDBStore, ranking: Ranking) -> dg.MaterializeResult:
    db, key, ranker = store.get(), context.partition_key, ranking.checked()
    rows = []
    for prompt_id, matrix in matrices(db, key).items():
        for ranker in RANKERS:
            ranked = matrix.rank(ranking, ranker, prompt_id)
            items: list[tuple[str, list[str], np.ndarray, Any]] = [("code", matrix.codes, ranked.scores, ranked.clusters.of_code)]
            if ranker == "self_verification":
                tests = self_verification_scores(matrix.passed, damping=ranking.damping, iterations=ranking.iterations)[1]
                items.append(("test", matrix.tests, tests, [None] * len(tests)))
            for kind, ids, values, clusters in items:
                for idx, (item_id, score, rank, cluster) in enumerate(zip(ids, values, ranks(values), clusters)):
                    rows.append({"partition_key": key, "prompt_id": prompt_id, "ranker": ranker, "kind": kind, "item_id": item_id,
                                 "item_index": idx, "score": float(score), "rank": int(rank), "cluster": None if cluster is None else int(cluster),
                                 "chosen": kind == "code" and idx == ranked.chosen, "confidence": ranked.confidence})  # fmt: skip
    if any(not np.isfinite(r["score"]) for r in rows):
        raise dg.Failure("non-finite score computed; nothing written")
    db.replace_partition(key, {"verification_scores": rows})
    scores = db.query("SELECT ranker, score FROM verification_scores WHERE kind = 'code'").rows()  # the whole asset
    codes = {r: [score for ranker, score in scores if ranker == r] for r in RANKERS}
    metadata: dict[str, Any] = {
        "prompts": len({r["prompt_id"] for r in rows}),
        **whole_asset(db, "verification_scores", key, len(rows)),
        **previews(db, "SELECT partition_key, prompt_id, ranker, item_index AS code, rank, score, confidence FROM verification_scores "
                       "WHERE {partition} AND kind = 'code' AND rank = 1 ORDER BY partition_key, prompt_id, ranker", key),
    }  # fmt: skip
    if scores:
        metadata["score_histogram"] = dg.MetadataValue.md(score_panels(codes, "Code scores per ranker, all partitions"))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(deps=[verification_scores, seed_reference], description="Tests the chosen code of the configured ranker passes (its whole behaviour cluster does); "
                                                                "where the seed decides, the verified tests the seed passes.",
          metadata=table_metadata("trusted_tests"), **SCORING_ARGS)  # fmt: skip
def trusted_tests(context: dg.AssetExecutionContext, store: DuckDBStore, ranking: Ranking) -> dg.MaterializeResult:
    db, key, ranker = store.get(), context.partition_key, ranking.checked()
    rows = []
    for prompt_id, decision in decisions(db, key, ranking).items():
        rows += [{"partition_key": key, "prompt_id": prompt_id, "ranker": ranker, "test_id": decision.matrix.tests[j], "test_index": j}
                 for j in np.flatnonzero(decision.trusted())]  # fmt: skip
    db.replace_partition(key, {"trusted_tests": rows})
    shown = ("SELECT partition_key, t.prompt_id, t.ranker, t.test_index, g.test FROM trusted_tests t JOIN generated_tests g USING (partition_key, test_id) "
             "WHERE {partition} ORDER BY partition_key, t.prompt_id, t.test_index")  # fmt: skip
    return dg.MaterializeResult(metadata={**whole_asset(db, "trusted_tests", key, len(rows)), **previews(db, shown, key)})


class FilterConfig(dg.Config):
    """The confidence threshold of one run (timings skip, and pairs drop, prompts below it)."""

    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0,
                                         description="Overrides ranking.min_confidence for this run. Empty: the run's profile (tag `profile`): "
                                                     f"paper the ranking's (its fit's: {DEFAULT_MIN_CONFIDENCE:g} for the embedded model's, chosen by cross-validation), quick 0 "
                                                     "(keeps every prompt: 4 samples per task fall outside the 10 the confidence model was fitted on).")  # fmt: skip

    def threshold(self, ranking: Ranking, profile: str = "paper", seeded: bool = False) -> float:
        if self.min_confidence is not None:
            return self.min_confidence
        return QUICK_FILTER["min_confidence"] if profile == "quick" else ranking.threshold(seeded)


QUICK_FILTER = {"min_confidence": 0.0}  # the quick profile's FilterConfig (make run exercises the loop end to end)


class TimingConfig(FilterConfig):
    repetitions: int = Field(default=5, description="Timed rounds (after one warm-up), interleaved across candidates.")
    time_limit_s: float = Field(default=2.0, description="CPU seconds per test.")


def _texts(db, key: str, table: str, id_col: str, text_col: str) -> dict[str, str]:
    return dict(db.query(f"SELECT {id_col}, {text_col} FROM {table} WHERE partition_key = ?", [key]).rows())


@dg.asset(deps=[trusted_tests], description="Median CPU time (and MAD) of the codes of the chosen code's behaviour cluster on the trusted tests, "
                                             "for prompts that pass the confidence filter.", metadata=table_metadata("timings"), **SCORING_ARGS)  # fmt: skip
def timings(
    context: dg.AssetExecutionContext, config: TimingConfig, store: DuckDBStore, ranking: Ranking
) -> dg.MaterializeResult:
    db, key = store.get(), context.partition_key
    trusted = db.query(
        "SELECT prompt_id, test_index, test_id FROM trusted_tests WHERE partition_key = ? ORDER BY ALL", [key]
    ).rows()
    by_prompt: dict[str, list[tuple[int, str]]] = {}
    for prompt_id, j, test_id in trusted:
        by_prompt.setdefault(prompt_id, []).append((j, test_id))
    codes_text, tests_text = (
        _texts(db, key, "candidate_code", "code_id", "code"),
        _texts(db, key, "generated_tests", "test_id", "test"),
    )
    rows, setup = [], seed_imports(db, key)
    for prompt_id, decision in decisions(db, key, ranking).items():
        ranked = decision.ranked
        if not by_prompt.get(prompt_id) or ranked.confidence < config.threshold(ranking, run_profile(context), decision.seeded):
            continue
        codes, correct = decision.matrix.codes, np.flatnonzero(trusted_codes(ranked)).tolist()
        results = time_candidates([codes_text[codes[i]] for i in correct], [tests_text[t] for _, t in by_prompt[prompt_id]],
                                  setup=setup.get(prompt_id, ""), repetitions=config.repetitions, time_limit_s=config.time_limit_s)  # fmt: skip
        for i, t in zip(correct, results):
            rows.append({"partition_key": key, "prompt_id": prompt_id, "code_id": codes[i], "code_index": i, "median_ns": t.median_ns,
                         "mad_ns": t.mad_ns, "repetitions": len(t.samples_ns), "samples_ns": list(t.samples_ns), "all_passed": t.all_passed})  # fmt: skip
    db.replace_partition(key, {"timings": rows})
    shown = ("SELECT partition_key, t.prompt_id, t.code_index, round(t.median_ns / 1e6, 3) AS median_ms, round(t.mad_ns / 1e6, 3) AS mad_ms, "
             "t.repetitions, t.all_passed, c.code FROM timings t JOIN candidate_code c USING (partition_key, code_id) WHERE {partition} "
             "ORDER BY partition_key, t.prompt_id, t.median_ns")  # fmt: skip
    return dg.MaterializeResult(metadata={**whole_asset(db, "timings", key, len(rows)), **previews(db, shown, key)})


class PairsConfig(FilterConfig):
    min_speedup: float = Field(default=1.1, description="Efficiency pairs need the slow code this much slower (paper: 10%).")


def _pair_row(
    key, prompt, kind, ranking: Ranking, threshold: float, decision: Decision, pair: Pair, code_text, trusted_ids
) -> dict:
    ranker, ranked, codes = ranking.ranker, decision.ranked, decision.matrix.codes
    scores = ranked.scores
    chosen, rejected = codes[pair.chosen], codes[pair.rejected]
    return {"partition_key": key, "pair_id": content_hash(f"{prompt['prompt_id']}\0{kind}\0{ranker}\0{chosen}\0{rejected}"),
            "prompt_id": prompt["prompt_id"], "seed_id": prompt["seed_id"], "kind": kind, "ranker": ranker,
            "prompt": prompt["prompt"], "chosen": code_text[chosen], "rejected": code_text[rejected],
            "chosen_code_id": chosen, "rejected_code_id": rejected, "margin": float(pair.margin),
            "chosen_score": float(scores[pair.chosen]), "rejected_score": float(scores[pair.rejected]),
            "chosen_cluster": pair.chosen_cluster, "rejected_cluster": pair.rejected_cluster,
            "trusted_test_ids": trusted_ids, "confidence": ranked.confidence, "min_confidence": threshold,
            "seed_status": decision.seed_status}  # fmt: skip


PAIRS_AND_SKIPS = """
    SELECT kind || ' pairs', count(*) FROM preference_pairs GROUP BY kind
    UNION ALL SELECT 'no ' || kind || ' pair: ' || reason, count(*) FROM preference_pairs_skipped GROUP BY kind, reason ORDER BY 2 DESC"""
PAIR_CODE = ("SELECT partition_key, kind, round(margin, 3) AS margin, chosen || '\n\n# ---- rejected ----\n' || rejected AS code "
             "FROM preference_pairs ORDER BY kind, partition_key, pair_id")  # fmt: skip


@dg.asset(deps=[timings], description="Correctness (the chosen code vs a code of the lowest-scored behaviour cluster failing a trusted test) and "
                                      "efficiency (fast vs slow inside the chosen code's behaviour cluster) pairs in TRL's prompt/chosen/rejected format, from prompts that pass the confidence filter.",
          metadata=table_metadata("preference_pairs"), **SCORING_ARGS)  # fmt: skip
def preference_pairs(
    context: dg.AssetExecutionContext, config: PairsConfig, store: DuckDBStore, ranking: Ranking
) -> dg.MaterializeResult:
    db, key = store.get(), context.partition_key
    prompts = {r[0]: {"prompt_id": r[0], "seed_id": r[1], "prompt": r[2]} for r in
               db.query("SELECT prompt_id, seed_id, prompt FROM prompts WHERE partition_key = ? AND reason IS NULL", [key]).rows()}  # fmt: skip
    code_text = _texts(db, key, "candidate_code", "code_id", "code")
    norm = _texts(db, key, "candidate_code", "code_id", "norm_hash")
    trusted: dict[str, list[str]] = {}
    for prompt_id, test_id in db.query(
        "SELECT prompt_id, test_id FROM trusted_tests WHERE partition_key = ? ORDER BY test_index", [key]
    ).rows():
        trusted.setdefault(prompt_id, []).append(test_id)
    timed: dict[str, dict[int, Timing]] = {}
    for prompt_id, i, med, mad, samples, ok in db.query(
        "SELECT prompt_id, code_index, median_ns, mad_ns, samples_ns, all_passed FROM timings WHERE partition_key = ?", [key]
    ).rows():
        timed.setdefault(prompt_id, {})[i] = Timing(med, mad, tuple(samples), ok)
    chosen_by, profile = decisions(db, key, ranking), run_profile(context)
    pairs, skipped = [], []
    for prompt_id in sorted(prompts):
        if prompt_id not in chosen_by:
            skipped += [
                {"partition_key": key, "prompt_id": prompt_id, "kind": k, "reason": "no_candidates_or_tests", "confidence": None}
                for k in ("correctness", "efficiency")
            ]
            continue
        decision = chosen_by[prompt_id]
        ranked, threshold = decision.ranked, config.threshold(ranking, profile, decision.seeded)
        hashes = [norm[c] for c in decision.matrix.codes]
        found = {"correctness": correctness_pair(ranked, hashes, decision.matrix.code_weights, trusted=decision.trusted()),
                 "efficiency": efficiency_pair(timed.get(prompt_id, {}), hashes, min_ratio=config.min_speedup, cluster=ranked.top_cluster)}  # fmt: skip
        if ranked.confidence < threshold:
            found = dict.fromkeys(found, "low_confidence")
        if not trusted.get(prompt_id):
            found = dict.fromkeys(found, "no_trusted_tests")
        if decision.blocked:
            found = dict.fromkeys(found, decision.blocked)
        for kind, result in found.items():
            if isinstance(result, Pair):
                pairs.append(
                    _pair_row(key, prompts[prompt_id], kind, ranking, threshold, decision, result, code_text, trusted[prompt_id])
                )
            else:
                skipped.append(
                    {
                        "partition_key": key,
                        "prompt_id": prompt_id,
                        "kind": kind,
                        "reason": result,
                        "confidence": ranked.confidence,
                    }
                )
    db.replace_partition(key, {"preference_pairs": pairs, "preference_pairs_skipped": skipped})
    by_kind = {k: sum(p["kind"] == k for p in pairs) for k in ("correctness", "efficiency")}
    shown = dict(db.query(PAIRS_AND_SKIPS).rows())  # the whole asset
    return dg.MaterializeResult(metadata={"skipped": len(skipped), "correctness_pairs": by_kind["correctness"], "efficiency_pairs": by_kind["efficiency"],
                                          **whole_asset(db, "preference_pairs", key, len(pairs), dropped_table="preference_pairs_skipped"),
                                          "pairs_and_skips": frame_table(pl.DataFrame({"what": list(shown), "rows": list(shown.values())}, schema={"what": pl.String, "rows": pl.Int64})),
                                          "pairs_by_kind": dg.MetadataValue.md(hbars(shown, "Pairs, and prompts without a pair of a kind, all partitions", "rows")),
                                          **previews(db, "SELECT partition_key, kind, round(margin, 3) AS margin, round(confidence, 3) AS confidence, chosen_cluster, "
                                                         "rejected_cluster, chosen, rejected FROM preference_pairs WHERE {partition} "
                                                         "ORDER BY partition_key, kind, pair_id", key),
                                          "pairs_as_code": code_preview(db, PAIR_CODE, title="Pairs, all partitions: chosen, then rejected")})  # fmt: skip


class ExportConfig(dg.Config):
    directory: str = Field(
        default="data/export", description="Where preference_pairs.{parquet,jsonl}, manifest.json and README.md go."
    )
    heldout_share: float = Field(
        default=0.2,
        ge=0.0,
        lt=1.0,
        description="Share of prompts whose pairs are held out from training (split = 'heldout'), chosen by prompt-id hash.",
    )


CONFIDENCE_FILTER = ("a prompt yields pairs when the calibrated probability that its chosen code is correct (from the chosen behaviour "
                     "cluster's share of the code samples and of the verified generated tests it passes) is at least min_confidence; only verified tests "
                     "(judged outside the candidate's process) are ranked on and trusted; correctness pairs "
                     "reject a code of another behaviour cluster failing a trusted test, efficiency pairs compare codes of the chosen code's "
                     "behaviour cluster only (identical outputs on every test input)")  # fmt: skip


def heldout_prompts(prompt_ids: list[str], share: float) -> set[str]:
    """Prompts held out from training: stable by id hash, and at least one when there are two or
    more prompts and ``share`` > 0 (so a small pair set still gets a held-out accuracy)."""
    ordered = sorted(set(prompt_ids), key=lambda p: hashlib.sha256(p.encode()).hexdigest())
    n = round(len(ordered) * share) if share > 0 else 0
    n = max(n, 1) if share > 0 and len(ordered) >= 2 else n
    return set(ordered[:n])


@dg.asset(deps=[preference_pairs], group_name="preferences", kinds={"parquet", "duckdb"}, code_version=SCORING_ARGS["code_version"],
          description="All preference pairs as Parquet + JSONL that `datasets.load_dataset` reads (split train/heldout by prompt), with a manifest and dataset card.")  # fmt: skip
def preference_pairs_export(context: dg.AssetExecutionContext, config: ExportConfig, store: DuckDBStore) -> dg.MaterializeResult:
    db, out = store.get(), Path(config.directory).resolve()
    out.mkdir(parents=True, exist_ok=True)
    prompt_ids = [r[0] for r in db.query("SELECT DISTINCT prompt_id FROM preference_pairs").rows()]
    heldout = sorted(heldout_prompts(prompt_ids, config.heldout_share))
    select = ("SELECT prompt, chosen, rejected, kind, margin, ranker, CASE WHEN list_contains(?, prompt_id) THEN 'heldout' ELSE 'train' END AS split, "
              "confidence, chosen_cluster, rejected_cluster, pair_id, prompt_id, seed_id, chosen_code_id, rejected_code_id FROM preference_pairs ORDER BY pair_id")  # fmt: skip
    with db.transaction() as conn:  # one snapshot for everything read here (DuckLake: recorded for lineage)
        snapshot = db.snapshot(conn)
        frame = conn.execute(select, [heldout]).pl()
        stats = conn.execute("SELECT kind, ranker, count(*) FROM preference_pairs GROUP BY ALL ORDER BY ALL").fetchall()
        models = [r[0] for r in conn.execute("SELECT DISTINCT model FROM prompts ORDER BY 1").fetchall()]
        sources = [r[0] for r in conn.execute("SELECT DISTINCT source FROM seeds ORDER BY 1").fetchall()]
        selection = [
            {"ranker": r, "min_confidence": c}
            for r, c in conn.execute("SELECT DISTINCT ranker, min_confidence FROM preference_pairs ORDER BY ALL").fetchall()
        ]
    version = hashlib.sha256("\n".join(f"{p}:{s}" for p, s in zip(frame["pair_id"], frame["split"])).encode()).hexdigest()[:16]
    splits = {s: int((frame["split"] == s).sum()) for s in ("train", "heldout")}
    for name, write in (("preference_pairs.parquet", frame.write_parquet), ("preference_pairs.jsonl", frame.write_ndjson)):
        write(out / f".{name}.partial")
        (out / f".{name}.partial").replace(out / name)  # readers never see a half-written file
    manifest = {"pair_set_version": version, "pairs": frame.height, "splits": splits, "heldout_prompts": heldout, "models": models, "sources": sources,
                "selection": selection, "confidence_filter": CONFIDENCE_FILTER, "store_snapshot": snapshot}  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(n for _, _, n in stats)
    chosen_by = "; ".join(f"ranker {x['ranker']}, confidence >= {x['min_confidence']}" for x in selection) or "none"
    card = ["# codedpo preference pairs", "", "CodeDPO-style pairs (arXiv 2410.05605) built from self-generated, self-verified code.", "",
            f"- pairs: {total} (train {splits['train']}, held out {splits['heldout']}; version {version})",
            f"- generator model(s): {', '.join(models) or 'none'}", f"- seed sources: {', '.join(sources) or 'none'}",
            f"- selection: {chosen_by}",
            f"- confidence filter: {CONFIDENCE_FILTER}", "",
            "| kind | ranker | pairs |", "|---|---|---|"] + [f"| {k} | {r} | {n} |" for k, r, n in stats] + [
            "", "Columns: prompt, chosen, rejected (TRL preference format), kind, margin, ranker, split (train/heldout by prompt), "
                "confidence (calibrated P(chosen code correct)), chosen_cluster / rejected_cluster (behaviour clusters of the prompt, "
                "see the behaviour_clusters view), ids tracing back to seed and codes.",
            "", "```python", "from datasets import load_dataset", f"load_dataset('parquet', data_files='{out / 'preference_pairs.parquet'}')", "```"]  # fmt: skip
    (out / "README.md").write_text("\n".join(card) + "\n")
    preview_table = frame_table(frame.head(5))
    empty = {"note": dg.MetadataValue.md(f"**No pairs exported**: {no_pairs_report(db)}")} if not total else {}
    return dg.MaterializeResult(metadata={**empty, "dagster/row_count": total, "path": dg.MetadataValue.path(str(out)), "pair_set_version": version,
                                          "dagster/column_schema": preview_table.schema, "preview": preview_table,
                                          "splits": dg.MetadataValue.json(splits),
                                          "by_kind_ranker": dg.MetadataValue.json({f"{k}/{r}": n for k, r, n in stats})})  # fmt: skip


@dg.asset_check(
    asset=preference_pairs_export,
    blocking=True,
    description="chosen ≠ rejected; correctness pairs ordered by score; every prompt with pairs has a trusted test; scores finite.",
)
def pairs_are_sound(store: DuckDBStore) -> dg.AssetCheckResult:
    db = store.get()
    problems = {
        "chosen_equals_rejected": db.query("SELECT count(*) FROM preference_pairs WHERE chosen = rejected").item(),
        "correctness_not_ordered": db.query("SELECT count(*) FROM preference_pairs WHERE kind = 'correctness' AND NOT chosen_score > rejected_score").item(),
        "prompts_without_trusted_test": db.query(
            "SELECT count(DISTINCT prompt_id) FROM preference_pairs p WHERE NOT EXISTS (SELECT 1 FROM trusted_tests t WHERE t.prompt_id = p.prompt_id)").item(),
        "non_finite_scores": db.query("SELECT count(*) FROM verification_scores WHERE NOT isfinite(score)").item(),
    }  # fmt: skip
    pairs = int(db.query("SELECT count(*) FROM preference_pairs").item())
    metadata = {"pairs": pairs, **{k: int(v) for k, v in problems.items()}}
    if not pairs:  # nothing to be unsound, but nothing to train on: a warning, not a pass (it does not block)
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
                                   description="no pairs to check: the export is empty (see pipeline_summary for why)")  # fmt: skip
    return dg.AssetCheckResult(passed=not any(problems.values()), metadata=metadata)
