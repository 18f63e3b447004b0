"""Seconds per DPO step on the embedded model on this CPU: sequence length and threads side by side.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/dpo_step_bench.py [--steps 3] [--pairs 8]
(figures: docs/benchmarks.md, "DPO step").

Each arm trains the embedded model (bf16 checkpoint loaded as fp32, LoRA r 8 on every linear layer,
batch 2, as the quick profile does) through the product's ``training.train`` on the same pairs: a
HumanEval prompt, its canonical solution as chosen and the solution with its last line dropped as
rejected (real code lengths; nothing is evaluated). A step's time is the mean over the steps after
the first (the first pays the allocator's warm-up). Arms run one after another in one process, so
compare them within one run only. Last line: ``dpo-step: <arm> <s> s/step; ...``.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codedpo_assets.decontam import humaneval_problems
from codedpo_assets.generation.embedded import embedded_model_dir
from codedpo_assets.training import TrainSettings, train

ARMS = {  # name → (max_length, torch threads)
    "len320-threads2": (320, 2),  # the quick profile's
    "len256-threads2": (256, 2),
    "len320-threads1": (320, 1),
}


def pairs(n: int) -> list[dict]:
    """Chosen: the canonical solution; rejected: the same without its last line."""
    out = []
    for p in humaneval_problems()[:n]:
        body = p["canonical_solution"].rstrip().splitlines()
        out.append(
            {
                "prompt": p["prompt"],
                "chosen": p["prompt"] + "\n".join(body),
                "rejected": p["prompt"] + "\n".join(body[:-1] or ["    pass"]),
            }
        )
    return out


def seconds_per_step(data: list[dict], model: Path, max_length: int, threads: int, steps: int) -> float:
    import torch

    torch.set_num_threads(threads)
    marks: list[float] = []
    settings = TrainSettings(max_steps=steps, max_length=max_length, learning_rate=1e-4)
    with tempfile.TemporaryDirectory() as out:
        train(data, model, Path(out), settings, report=lambda _: marks.append(time.monotonic()))
    return (marks[-1] - marks[0]) / max(len(marks) - 1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()
    model, data = embedded_model_dir(), pairs(args.pairs)
    results = {}
    for name, (max_length, threads) in ARMS.items():
        results[name] = seconds_per_step(data, model, max_length, threads, args.steps)
        print(f"{name}: {results[name]:.1f} s/step", flush=True)
    print("dpo-step: " + "; ".join(f"{k} {v:.1f} s/step" for k, v in results.items()))


if __name__ == "__main__":
    main()
