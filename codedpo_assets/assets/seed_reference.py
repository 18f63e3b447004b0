"""Seed-reference stage: what each task's seed says of its candidates and tests (agrees, overrules,
conflicting, drifted, no tests, not runnable), with its fidelity — the table the pairs' choice is
traced to and the UI's per-task and per-source view of drift (codedpo_assets/reference.py)."""

import math

import dagster as dg

from codedpo_assets.assets.generation import ASSET_ARGS
from codedpo_assets.assets.metadata import code_version, frame_table, preview, previews, table_metadata, whole_asset
from codedpo_assets.assets.pass_matrix import pass_matrix
from codedpo_assets.assets.ranking import Decision, Ranking, decisions
from codedpo_assets.assets.resources import DuckDBStore
from codedpo_assets.store import named_query


def _figure(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _row(key: str, prompt_id: str, seed_id: str, decision: Decision) -> dict:
    verdict, ranked = decision.seed, decision.ranked
    return {"partition_key": key, "prompt_id": prompt_id, "seed_id": seed_id, "status": verdict.status, "reason": verdict.reason,
            "fidelity": _figure(verdict.fidelity), "judged": float(verdict.judged), "match_mass": float(verdict.match_mass),
            "overlap": float(verdict.overlap), "seed_cluster": verdict.cluster if verdict.cluster >= 0 else None,
            "decides": decision.seeded, "chosen_code_id": decision.matrix.codes[ranked.chosen] if ranked.chosen >= 0 else None,
            "confidence": float(ranked.confidence)}  # fmt: skip


PER_TASK = ("SELECT r.partition_key, s.symbol, r.status, round(r.fidelity, 3) AS fidelity, round(r.match_mass, 3) AS match_mass, r.decides, "
            "r.reason FROM seed_reference r JOIN seeds s USING (partition_key, seed_id) WHERE {partition} "
            "ORDER BY r.partition_key, r.status, s.symbol")  # fmt: skip


@dg.asset(
    deps=[pass_matrix],
    description="Per task, its seed's verdict on the candidates and tests (the pass matrix's reference row judged by codedpo_assets/reference.py): "
    "agrees / overrules / conflicting / drifted / no_tests / not_runnable, with fidelity and reason; decides = the seed chose the code.",
    code_version=code_version(__name__, "codedpo_assets.reference", "codedpo_assets.assets.ranking", "codedpo_assets.scoring", "codedpo_assets.behaviour"),
    metadata=table_metadata("seed_reference"),
    **{**ASSET_ARGS, "group_name": "verification"},
)  # fmt: skip
def seed_reference(context: dg.AssetExecutionContext, store: DuckDBStore, ranking: Ranking) -> dg.MaterializeResult:
    db, key = store.get(), context.partition_key
    seed_of = dict(db.query("SELECT prompt_id, seed_id FROM prompts WHERE partition_key = ?", [key]).rows())
    rows = [
        _row(key, prompt_id, seed_of[prompt_id], decision) for prompt_id, decision in sorted(decisions(db, key, ranking).items())
    ]
    db.replace_partition(key, {"seed_reference": rows})
    statuses = {s: sum(r["status"] == s for r in rows) for s in sorted({r["status"] for r in rows})}
    return dg.MaterializeResult(
        metadata={
            **whole_asset(db, "seed_reference", key, len(rows)),
            "use_seed": ranking.use_seed,
            "statuses": dg.MetadataValue.json(statuses),
            **previews(db, PER_TASK, key, limit=20),
            "by_source": frame_table(db.query("SELECT * FROM seed_reference_by_source")),
            "drifted_tasks": preview(db, named_query("drifted_tasks"), limit=10),
        }
    )
