"""Why a run made no pairs: the first upstream stage that came out empty, the prompts by the reason
they gave none, and what to change for each — said by the pair export, training and the CLI summary."""

# Upstream stages in order, with the rows that feed the next one: the first empty one is the culprit.
_STAGES = (
    ("seeds", "SELECT count(*) FROM seeds"),
    ("prompts", "SELECT count(*) FROM prompts WHERE reason IS NULL"),
    ("candidate_code", "SELECT count(*) FROM candidate_code WHERE reason IS NULL"),
    ("generated_tests", "SELECT count(*) FROM generated_tests WHERE reason IS NULL"),
    ("pass_matrix", "SELECT count(*) FROM pass_matrix WHERE NOT coalesce(is_reference, false)"),
    ("trusted_tests", "SELECT count(*) FROM trusted_tests"),
    ("preference_pairs", "SELECT count(*) FROM preference_pairs"),
)


def why_no_pairs(db) -> str:
    for name, sql in _STAGES:
        if db.query(sql).item() == 0:
            return f"upstream `{name}` produced no usable rows"
    return "every pair is in the held-out split (lower preference_pairs_export.heldout_share or add seeds)"


# Why prompts gave no correctness pair, with what to change for each (the summary and the UI say it).
REMEDIES = {  # the reason codes of preference_pairs_skipped (pairs.py, assets/preferences.py)
    "no_trusted_tests": "no test was passed by the top-ranked code: sample more tests (n_samples) or use a stronger model",
    "fewer_than_two_candidates": "too few distinct programs: raise n_samples or the temperature",
    "no_candidates_or_tests": "the model's replies did not parse (see generation_drops): check the generator",
    "no_code_fails_a_trusted_test": "every program passed the trusted tests: add seeds (harder tasks) or raise n_samples",
    "low_confidence": "below the confidence filter: lower filter.min_confidence or sample more",
    "seed_conflicting": "no candidate behaves like the task's seed: read the task beside its seed (sql/queries/drifted_tasks.sql), "
    "sample more, or set ranking.use_seed = false",
}


def no_pairs_report(db) -> str:
    """One paragraph: where the funnel went empty, the prompts by reason, and what to change."""
    reasons = db.query(
        "SELECT reason, count(DISTINCT prompt_id) FROM preference_pairs_skipped WHERE kind = 'correctness' "
        "GROUP BY reason ORDER BY 2 DESC, reason"
    ).rows()
    counts = "; ".join(f"{reason} x{n}" + (f" ({REMEDIES[reason]})" if reason in REMEDIES else "") for reason, n in reasons)
    return f"{why_no_pairs(db)}. Prompts without a correctness pair, by reason: {counts or 'none recorded'}."
