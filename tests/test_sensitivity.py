"""The evaluation sees a known change: a tiny model trained on reversed pairs comes out "worse"."""

from codedpo_assets.sensitivity import judged, reversed_pairs, sensitivity
from codedpo_assets.training import TrainSettings


def _pairs(names: range) -> list[dict]:
    """Pairs with one systematic difference (chosen adds, rejected subtracts), so what training on
    some of them learns shows on the others."""
    return [{"prompt": f"Write add{i}(a, b) returning a plus b.", "chosen": f"def add{i}(a, b):\n    return a + b\n",
             "rejected": f"def add{i}(a, b):\n    return a - b\n"} for i in names]  # fmt: skip


def test_reversed_pairs_swap_chosen_and_rejected():
    pair = _pairs(range(1))[0]
    (flipped,) = reversed_pairs([pair])
    assert (flipped["chosen"], flipped["rejected"], flipped["prompt"]) == (pair["rejected"], pair["chosen"], pair["prompt"])


def test_reversed_training_is_judged_worse_and_the_right_way_better(tiny_model_dir, tmp_path):
    settings = TrainSettings(
        lora=False, learning_rate=1e-2, max_steps=8, batch_size=4, beta=0.5, max_length=1024
    )  # the whole reply fits (keep_start truncation would cut the difference)
    arms = sensitivity(tiny_model_dir, _pairs(range(8)), _pairs(range(100, 116)), tmp_path, settings)
    reward = {
        arm: next(r for r in records if r["role"] == "checkpoint" and r["metric"] == "heldout_reward_accuracy")
        for arm, records in arms.items()
    }
    assert reward["reversed"]["n"] == 16 and reward["reversed"]["change_ci_high"] < 0  # the interval excludes no change
    assert judged(arms["reversed"]) == "worse" and judged(arms["trained"]) == "better"


def test_one_verdict_from_many():
    rec = lambda v: {"role": "checkpoint", "verdict": v}  # noqa: E731
    assert judged([rec("worse"), rec("not enough data (n = 9)")]) == "worse"
    assert judged([rec("better"), rec("worse")]) == "mixed"
    assert judged([rec("not enough data (n = 9)"), {"role": "base", "verdict": None}]) == "not enough data (n = 9)"
