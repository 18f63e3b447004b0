"""Preference training on a tiny offline model: every arm trains, the checkpoint reloads, failures keep old state."""

import json
import math

import pytest

from codedpo_assets.training import TrainingError, TrainSettings, chat_example, train

PAIRS = [
    {"prompt": f"Write add{i}(a, b) returning the sum.", "chosen": f"def add{i}(a, b):\n    return a + b\n",
     "rejected": f"def add{i}(a, b):\n    return a - b\n"}
    for i in range(6)
]  # fmt: skip


@pytest.mark.parametrize("arm", ["dpo", "kto", "rpo", "sft"])
def test_arm_trains_and_checkpoint_reloads(tiny_model_dir, tmp_path, arm):
    from transformers import AutoModelForCausalLM

    progress = []
    result = train(PAIRS, tiny_model_dir, tmp_path / "ckpt", TrainSettings(arm=arm, max_steps=2, batch_size=2, learning_rate=1e-3),
                   report=progress.append, metadata={"pair_set": "v1"})  # fmt: skip
    assert result.steps == 2 and result.path.is_dir() and result.path.name.startswith(arm + "-")
    assert [p["step"] for p in progress] == [1, 2] and progress[-1]["total"] == 2 and "eta_s" in progress[0]
    assert all(math.isfinite(c["loss"]) for c in result.curves)
    if arm in ("dpo", "rpo"):
        assert "rewards/accuracies" in result.curves[0] and "rewards/margins" in result.curves[0]
    info = json.loads((result.path / "training.json").read_text())
    assert info["settings"]["arm"] == arm and info["pair_set"] == "v1" and info["pairs"] == len(PAIRS)
    model = AutoModelForCausalLM.from_pretrained(result.path)  # merged weights: no peft needed
    assert not hasattr(model, "peft_config")
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.name.startswith(".partial")]


def test_full_finetune_without_lora_needs_no_saved_reference(tiny_model_dir, tmp_path):
    result = train(PAIRS, tiny_model_dir, tmp_path, TrainSettings(lora=False, max_steps=1, learning_rate=1e-3))
    assert result.steps == 1 and math.isfinite(result.curves[0]["loss"])


def test_long_pairs_are_counted_as_truncated(tiny_model_dir, tmp_path):
    long = dict(PAIRS[0], chosen="def add0(a, b):\n" + "    a = a + 0\n" * 200 + "    return a + b\n")
    result = train([long, *PAIRS[1:]], tiny_model_dir, tmp_path, TrainSettings(max_steps=1, max_length=300))
    assert (result.truncated, result.unusable) == (1, 0)
    with pytest.raises(TrainingError, match="raise max_length"):
        train(PAIRS, tiny_model_dir, tmp_path, TrainSettings(max_steps=1, max_length=40))


def test_interrupted_training_leaves_previous_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    first = train(PAIRS, tiny_model_dir, tmp_path, TrainSettings(max_steps=1))
    before = sorted(p.name for p in tmp_path.iterdir())

    def boom(self, *a, **k):
        raise MemoryError("simulated out of memory")

    from trl import DPOTrainer

    monkeypatch.setattr(DPOTrainer, "train", boom)
    with pytest.raises(MemoryError):
        train(PAIRS, tiny_model_dir, tmp_path, TrainSettings(max_steps=1, seed=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == before and (first.path / "model.safetensors").exists()


def test_bad_settings_and_no_pairs_fail_clearly(tiny_model_dir, tmp_path):
    with pytest.raises(TrainingError, match="no training pairs"):
        train([], tiny_model_dir, tmp_path, TrainSettings())
    with pytest.raises(TrainingError, match="not one of"):
        train(PAIRS, tiny_model_dir, tmp_path, TrainSettings(arm="ppo"))
    with pytest.raises(TrainingError, match="batch_size >= 2"):
        train(PAIRS, tiny_model_dir, tmp_path, TrainSettings(arm="kto", batch_size=1))


def test_chat_example_matches_generation_prompt():
    ex = chat_example(PAIRS[0])
    assert ex["prompt"][-1]["role"] == "user" and PAIRS[0]["prompt"] in ex["prompt"][-1]["content"]
    assert ex["chosen"][0]["content"].startswith("```python\ndef add0") and ex["rejected"][0]["content"].endswith("```")
