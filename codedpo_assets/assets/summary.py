"""Totals across partitions: ``pipeline_summary`` — the funnel seeds → prompts → programs → tests →
cells → pairs over every partition (an asset page of a partitioned asset shows one partition)."""

import dagster as dg
import polars as pl

from codedpo_assets.assets.metadata import code_version, frame_table, numbers, preview, table_metadata
from codedpo_assets.assets.preferences import preference_pairs
from codedpo_assets.assets.resources import DuckDBStore
from codedpo_assets.assets.shortfall import REMEDIES
from codedpo_assets.plots import funnel, hbars, text_bar

FUNNEL = ("seeds", "prompts", "programs", "tests", "cells", "pairs")
# What each stage is counted against: programs and tests are written per prompt, cells are programs
# x tests of a prompt (per program: its tests), pairs come one or two per prompt.
FUNNEL_BASES = {"programs": "prompts", "tests": "prompts", "cells": "programs", "pairs": "prompts"}
# Prompts that yielded no pair of any kind, each once, by why no correctness pair came of it: the bars
# add up to the funnel's dropped pairs.
UNPAIRED_BY_REASON = """
    SELECT reason, count(*) FROM preference_pairs_skipped s
    WHERE kind = 'correctness' AND NOT EXISTS (SELECT 1 FROM preference_pairs p WHERE p.prompt_id = s.prompt_id)
    GROUP BY reason ORDER BY 2 DESC, reason"""

# The `summarize` job's automation condition: rebuilt whenever any partition of its upstream changes (eager() would wait for every partition to
# exist, and a partition that failed to build would then block the totals forever).
AFTER_ANY_PARTITION = (
    (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after_any_partition")


@dg.asset(
    deps=[preference_pairs],
    group_name="preferences",
    kinds={"duckdb"},
    owners=["team:codedpo"],
    code_version=code_version(__name__),
    metadata=table_metadata("pipeline_summary"),
    description="Every stage's output across all partitions (view `pipeline_summary`): the funnel seeds → prompts → programs → tests → "
                "cells → pairs, pass rate, pairs by kind, why prompts gave none, and how each seed source's seeds judged their tasks (drift).",
)  # fmt: skip
def pipeline_summary(store: DuckDBStore) -> dg.MaterializeResult:
    db = store.get()
    rows = db.query("SELECT stage, items, dropped, not_sampled, partitions FROM pipeline_summary ORDER BY step").rows()
    items = {stage: int(n) for stage, n, _, _, _ in rows}
    top = max(items.values(), default=0)
    table = [
        {"stage": stage, "items": int(n), "dropped": int(d), "not_sampled": int(c), "partitions": int(p), "bar": text_bar(n, top)}
        for stage, n, d, c, p in rows
    ]
    skipped = dict(db.query(UNPAIRED_BY_REASON).rows())
    pass_rate = items["cells passed"] / items["cells"] if items["cells"] else 0.0
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "funnel": frame_table(pl.DataFrame(table)),
            "funnel_chart": dg.MetadataValue.md(funnel([(s, items[s]) for s in FUNNEL], "Pipeline funnel, all partitions", FUNNEL_BASES)),
            **{f"total/{stage.replace(' ', '_')}": dg.MetadataValue.int(n) for stage, n in items.items()},
            **numbers({"pass_rate": pass_rate}),
            # inline, as a table (the chart opens behind "[Show Markdown]"), with what to change for each reason
            "prompts_without_pairs": frame_table(pl.DataFrame(
                [{"reason": r, "prompts": int(n), "what to change": REMEDIES.get(r, "")} for r, n in skipped.items()],
                schema={"reason": pl.String, "prompts": pl.Int64, "what to change": pl.String},
            )),
            "prompts_without_pairs_by_reason": dg.MetadataValue.md(hbars(skipped, "Why prompts yielded no pair (all partitions)", "prompts"))
            if skipped else "none",
            "seed_reference_by_source": frame_table(db.query("SELECT * FROM seed_reference_by_source")),
            "preview": preview(db, "SELECT kind, count(*) AS pairs, count(DISTINCT prompt_id) AS prompts, round(avg(margin), 3) AS avg_margin "
                                   "FROM preference_pairs GROUP BY kind ORDER BY kind"),
        }
    )  # fmt: skip
