"""Which HumanEval prompt format does the embedded model follow? One table over all 164 problems.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/eval_formats.py [--samples 2] [--limit 0]
(figures: docs/benchmarks.md "Evaluation prompt formats"; the evaluation's default format is chosen
from this table: ``eval_formats.DEFAULT_FORMAT``).

Per format (``codedpo_assets.eval_formats.FORMATS``), through the evaluation's own path
(``sample_humaneval`` + ``humaneval_scores``, the evaluation's default engine and quantization):
greedy + ``--samples`` sampled replies per problem at the evaluation's temperature; share of replies
that wrote anything beyond their prefill, share whose program defines the entry point with a body,
mean characters written, greedy pass@1, sampled pass@1 and pass@k — with 95 % intervals.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from codedpo_assets.assets.evaluation import EvaluationConfig
from codedpo_assets.decontam import humaneval_problems
from codedpo_assets.eval_formats import FORMATS
from codedpo_assets.evaluation import humaneval_scores, sample_humaneval
from codedpo_assets.generation.backends import Request
from codedpo_assets.generation.ct2 import local_backend
from codedpo_assets.generation.embedded import embedded_model_dir
from codedpo_assets.generation.tasks import seed_for
from codedpo_assets.intervals import bootstrap_interval, wilson_interval


def pct(values: np.ndarray, wilson: bool = False) -> str:
    low, high = wilson_interval(float(values.sum()), len(values)) if wilson else bootstrap_interval(values)
    return f"{100 * values.mean():5.1f} [{100 * low:.0f}-{100 * high:.0f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2, help="sampled replies per problem (beside the greedy one)")
    parser.add_argument("--limit", type=int, default=0, help="problems (0 = all 164)")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument(
        "--temperature", type=float, default=EvaluationConfig().temperature, help="sampling temperature of the sampled replies"
    )
    args = parser.parse_args()
    config = EvaluationConfig(temperature=args.temperature)
    backend = local_backend(embedded_model_dir(), config.engine, quantization=config.quantization, batch_size=config.batch_size)
    problems = humaneval_problems()[: args.limit or None]

    def generate(jobs, params):
        texts = backend.generate([Request(m, seed_for(m, i)) for m, i in jobs], params)
        return texts

    print(f"model {backend.identity}; {len(problems)} problems x (greedy + {args.samples} samples), temperature {config.temperature}, "
          f"<= {config.max_new_tokens} new tokens")  # fmt: skip
    print(
        f"{'format':<22}{'nonempty %':>16}{'defines %':>16}{'mean chars':>11}{'pass@1 greedy':>17}{'pass@1':>16}{f'pass@{args.samples}':>16}{'s':>6}"
    )
    for name in args.formats.split(","):
        fmt, t0 = FORMATS[name], time.perf_counter()
        raw: list[str] = []

        def keep(jobs, params):
            texts = generate(jobs, params)
            raw.extend(texts)  # noqa: B023 -- called within this iteration only
            return texts

        greedy, sampled, nonempty = sample_humaneval(keep, problems, args.samples, config.temperature, config.max_new_tokens, fmt)
        _, samples = humaneval_scores(problems, greedy, sampled, [1, args.samples], config.time_limit_s, nonempty=nonempty)
        items = samples.items
        flat_nonempty = np.asarray([f for flags in nonempty for f in flags], dtype=float)
        owners = list(problems) + [p for p in problems for _ in range(args.samples)]
        chars = np.mean([len(fmt.generated(p, t)) for p, t in zip(owners, raw)])
        print(f"{name:<22}{pct(flat_nonempty, True):>16}{pct(items['humaneval_defines_entry']):>16}{chars:11.0f}"
              f"{pct(items['humaneval_pass@1_greedy'], True):>17}{pct(items['humaneval_pass@1']):>16}{pct(items[f'humaneval_pass@{args.samples}']):>16}"
              f"{time.perf_counter() - t0:6.0f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
