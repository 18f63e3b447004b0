"""Can the evaluation see a change? Train on pairs reversed and as they are; judge both on held-out pairs.

A "not enough data" verdict means something only once a known-bad change is seen: a checkpoint
trained on the same pairs with chosen and rejected swapped must come out "worse" on a held-out
preference signal, with an interval that excludes no change. Pure core (no Dagster): the
benchmark (``benchmarks/eval_sensitivity.py``) and the tests run it; the implicit-reward signals are
the ones ``model_evaluation`` reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from codedpo_assets.evaluation import metric_records, model_logps, preference_items
from codedpo_assets.training import TrainSettings, chat_example, train


def reversed_pairs(pairs: Sequence[dict]) -> list[dict]:
    """The same pairs with chosen and rejected swapped: training on them is a known change for the worse."""
    return [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} for p in pairs]


def judged(records: Sequence[dict]) -> str:
    """One verdict for a checkpoint from its per-metric ones: worse / better when some metric says so
    and none says the opposite; mixed when both; else the first 'not enough data (n = N)'."""
    verdicts = [r["verdict"] for r in records if r["role"] == "checkpoint" and r["verdict"]]
    worse, better = "worse" in verdicts, "better" in verdicts
    if worse != better:
        return "worse" if worse else "better"
    return "mixed" if worse else next((v for v in verdicts if v.startswith("not enough")), "no verdict")


def sensitivity(base: str | Path, train_pairs: Sequence[dict], heldout_pairs: Sequence[dict], out_root: Path, settings: TrainSettings,
                prefix: str = "heldout") -> dict[str, list[dict]]:  # fmt: skip
    """Train a checkpoint on ``train_pairs`` reversed and one on them as they are; return, per arm,
    the held-out preference records (value, interval, change vs the base model, verdict)."""
    examples = [chat_example(p) for p in heldout_pairs]
    reference = model_logps(base, examples)
    out = {}
    for arm, pairs in (("reversed", reversed_pairs(train_pairs)), ("trained", list(train_pairs))):
        result = train(pairs, base, out_root / arm, settings)
        policy = model_logps(result.path, examples)
        out[arm] = metric_records(preference_items(reference, reference, prefix), preference_items(policy, reference, prefix))
    return out
