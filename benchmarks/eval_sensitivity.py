"""Can the evaluation see what training changed? A checkpoint trained on reversed pairs must come out worse.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/eval_sensitivity.py [--samples 1] [--max-steps 40] [--learning-rate 1e-4]
(figures: docs/benchmarks.md "Evaluation sensitivity").

1. The embedded model answers all 164 HumanEval problems in the evaluation's default format
   (greedy + ``--samples``), through the evaluation's path: format statistics and base pass@1.
2. Ground-truth pairs (``evaluation.groundtruth_pairs``): the canonical solution vs the base
   model's own program that fails the official tests. Even-numbered pairs train, odd ones are held out.
3. ``sensitivity.sensitivity``: one LoRA DPO checkpoint on the training pairs reversed, one on
   them as they are (default: the quick profile's learning rate); both judged on the held-out pairs by the
   evaluation's implicit-reward signals — value, 95 % interval, paired change vs the base model, verdict.

Last line: ``evaluation: format <name> nonempty <X> % defines <Y> % base pass@1 <Z>; reversed <verdict>; trained <verdict>``.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from codedpo_assets.assets.evaluation import EvaluationConfig
from codedpo_assets.assets.training import QUICK_TRAINING
from codedpo_assets.decontam import humaneval_problems
from codedpo_assets.eval_formats import FORMATS
from codedpo_assets.evaluation import groundtruth_pairs, humaneval_scores, sample_humaneval
from codedpo_assets.generation.backends import Request
from codedpo_assets.generation.ct2 import local_backend
from codedpo_assets.generation.embedded import embedded_model_dir
from codedpo_assets.generation.tasks import seed_for
from codedpo_assets.sensitivity import judged, sensitivity
from codedpo_assets.training import TrainSettings


def interval(low, high) -> str:
    return "-" if low is None else f"[{low:+.3f}, {high:+.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1, help="sampled replies per problem beside the greedy one")
    parser.add_argument("--limit", type=int, default=0, help="problems (0 = all 164)")
    parser.add_argument("--max-steps", type=int, default=40, help="DPO steps per checkpoint (-1: one epoch)")
    parser.add_argument("--max-length", type=int, default=768)
    parser.add_argument("--learning-rate", type=float, default=QUICK_TRAINING["learning_rate"])
    args = parser.parse_args()
    config, base = EvaluationConfig(), embedded_model_dir()
    fmt, problems = FORMATS[config.prompt_format], humaneval_problems()[: args.limit or None]
    backend = local_backend(base, config.engine, quantization=config.quantization, batch_size=config.batch_size)
    t0, replies = time.perf_counter(), []

    def generate(jobs, params):
        texts = backend.generate([Request(m, seed_for(m, i)) for m, i in jobs], params)
        replies.extend(texts)  # greedy replies (problem order), then the samples (problem-major)
        return texts

    greedy, sampled, nonempty = sample_humaneval(generate, problems, args.samples, config.temperature, config.max_new_tokens, fmt)
    metrics, samples = humaneval_scores(problems, greedy, sampled, [1], config.time_limit_s, nonempty=nonempty)
    share = 100 * float(np.mean([f for flags in nonempty for f in flags]))
    owners = problems + [p for p in problems for _ in range(args.samples)]
    writes = 100 * float(np.mean([f"def {p['entry_point']}(" in fmt.generated(p, text) for p, text in zip(owners, replies)]))
    print(f"base {backend.identity}, format {fmt.name}: {len(problems)} problems x (greedy + {args.samples}, temperature {config.temperature}); "
          f"nonempty {share:.1f} %, writes `def <entry point>(` {writes:.1f} %, defines it with a body that parses "
          f"{100 * metrics['humaneval_defines_entry']:.1f} %, pass@1 greedy {100 * metrics['humaneval_pass@1_greedy']:.1f} % "
          f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    pairs = groundtruth_pairs(problems, samples)
    train, heldout = pairs[0::2], pairs[1::2]
    settings = TrainSettings(learning_rate=args.learning_rate, max_steps=args.max_steps, max_length=args.max_length)
    print(f"ground-truth pairs: {len(pairs)} (train {len(train)}, held out {len(heldout)}); LoRA DPO, lr {settings.learning_rate}, "
          f"{settings.max_steps} steps of {settings.batch_size}, max_length {settings.max_length}")  # fmt: skip
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        arms = sensitivity(base, train, heldout, Path(out), settings, prefix="groundtruth")
    print(f"trained and judged both checkpoints in {time.perf_counter() - t0:.0f} s")
    print(f"{'arm':<10}{'metric':<30}{'n':>4}{'base':>8}{'checkpoint':>12}{'change':>9}  {'change 95 % CI':<20}verdict")
    for arm, records in arms.items():
        base_values = {r["metric"]: r["value"] for r in records if r["role"] == "base"}
        for r in (r for r in records if r["role"] == "checkpoint"):
            print(f"{arm:<10}{r['metric']:<30}{r['n']:4d}{base_values[r['metric']]:8.3f}{r['value']:12.3f}{r['change']:+9.3f}  "
                  f"{interval(r['change_ci_low'], r['change_ci_high']):<20}{r['verdict']}")  # fmt: skip
    print(f"evaluation: format {fmt.name} nonempty {share:.1f} % defines {100 * metrics['humaneval_defines_entry']:.1f} % "
          f"base pass@1 {100 * metrics['humaneval_pass@1_greedy']:.1f}; reversed {judged(arms['reversed'])}; trained {judged(arms['trained'])}")  # fmt: skip


if __name__ == "__main__":
    main()
