"""Seconds per DPO step on the embedded model by sequence length, LoRA targets and torch threads.

Run (after a `make run`, whose pair export it trains on):
HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/dpo_step_bench.py [--steps 3] [--pairs data/export/preference_pairs.parquet]
(figures: docs/benchmarks.md, "DPO step").

Each setting builds the product's own trainer (``training._trainer``: TRL DPOTrainer, LoRA, fp32 on
CPU, batch 2) on the same train-split pairs and times its optimizer steps after the first (the first
pays for allocation). Settings run in turn (``--rounds`` passes), so load swings hit each alike. The last line:
``dpo-step: default <X> s/step; fastest <setting> <Y> s/step``.
"""

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import polars as pl
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from codedpo_assets.assets.training import QUICK_TRAINING
from codedpo_assets.generation.embedded import embedded_model_dir
from codedpo_assets.training import TrainSettings, _trainer, chat_example

SETTINGS = {  # name: (overrides of the quick profile's settings, torch threads)
    "quick (all-linear, 320 tokens, 2 threads)": ({}, 2),
    "attention only (q,k,v,o)": ({"lora_targets": "q_proj,k_proj,v_proj,o_proj"}, 2),
    "1 thread": ({}, 1),
    "256 tokens": ({"max_length": 256}, 2),
}


class StepTimes(TrainerCallback):
    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def seconds_per_step(model_dir: Path, pairs: list[dict], settings: TrainSettings, threads: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as out:
        trainer = _trainer(settings, model, None, tokenizer, [chat_example(p) for p in pairs], Path(out), cuda=False)
        times = StepTimes()
        trainer.add_callback(times)
        trainer.train()
    return (times.ends[-1] - times.ends[0]) / (len(times.ends) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="data/export/preference_pairs.parquet")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per setting and round (the first is not timed)")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    path = Path(args.pairs)
    if not path.exists():
        sys.exit(f"{path}: no pair export; run `make run` first")
    pairs = pl.read_parquet(path).filter(pl.col("split") == "train").to_dicts()
    model_dir = embedded_model_dir()
    base = replace(TrainSettings(), **QUICK_TRAINING)
    print(
        f"model {model_dir.name}; {len(pairs)} train pairs; {args.steps} steps x {args.rounds} rounds per setting; batch {base.batch_size}"
    )
    results: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name, (overrides, threads) in SETTINGS.items():
            settings = replace(base, **overrides, max_steps=args.steps)
            results[name].append(seconds_per_step(model_dir, pairs, settings, threads))
    for name, values in results.items():
        print(f"{name:<45}{min(values):8.1f} s/step (best of {len(values)}; all {', '.join(f'{v:.1f}' for v in values)})")
    default = min(results[next(iter(SETTINGS))])
    fastest = min(results, key=lambda n: min(results[n]))
    print(f"dpo-step: default {default:.1f} s/step; fastest {fastest} {min(results[fastest]):.1f} s/step")


if __name__ == "__main__":
    main()
