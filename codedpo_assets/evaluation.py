"""Before/after evaluation through our own sandbox: HumanEval pass@k, held-out preference accuracy,
and efficiency of solutions both models get right (the paper's speed-up measure).

Every metric is an aggregate of per-item values (one per problem or held-out pair), kept as
``Items`` so that each value comes with its sample size and a 95% interval, and the checkpoint's
change over the base model with a paired interval and a verdict (``metric_records``; the
statistics are in :mod:`codedpo_assets.intervals`).

Pure core (no Dagster). Model outputs come from any generation backend; log-probabilities from a
Hugging Face causal LM.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codedpo_assets.eval_formats import DEFAULT_FORMAT, FORMATS, PromptFormat, defines_entry_point, task
from codedpo_assets.generation.backends import GenerationParams, Messages, TransformersBackend
from codedpo_assets.intervals import (
    bootstrap_interval,
    geometric_mean,
    newcombe_change_interval,
    paired_change_interval,
    verdict,
    wilson_interval,
)
from codedpo_assets.sandbox import run_pass_matrix
from codedpo_assets.sandbox.timing import compare, time_candidates


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k) for n samples, c correct."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


Items = dict[str, np.ndarray]  # metric → its per-item values (problems or pairs, in a fixed order)


@dataclass
class Samples:
    """Per problem: the greedy program and ``n`` sampled programs, with sandbox verdicts."""

    greedy: list[str]
    sampled: list[list[str]]
    greedy_ok: list[bool]
    sampled_ok: list[list[bool]]
    items: Items = field(default_factory=dict)  # per-problem greedy pass (0/1) and pass@k estimates, by metric


Generate = Callable[[list[tuple[Messages, int]], GenerationParams], list[str]]  # (messages, sample index) jobs → texts


def sample_humaneval(generate: Generate, problems: Sequence[dict], n: int, temperature: float, max_new_tokens: int,
                     fmt: PromptFormat = FORMATS[DEFAULT_FORMAT]) -> tuple[list[str], list[list[str]], list[list[bool]]]:  # fmt: skip
    """Greedy program + ``n`` sampled programs per problem (two batched generation calls), asked in
    ``fmt``; and per problem whether each reply (greedy first) wrote anything beyond its prefill."""
    greedy = generate([(fmt.messages(p), 0) for p in problems], GenerationParams(0.0, 1.0, max_new_tokens, fmt.stop))
    sampled: list[list[str]] = [[] for _ in problems]
    if n:
        params = GenerationParams(temperature, 1.0, max_new_tokens, fmt.stop)
        texts = generate([(fmt.messages(p), i + 1) for p in problems for i in range(n)], params)
        sampled = [texts[j * n : (j + 1) * n] for j in range(len(problems))]
    nonempty = [[bool(fmt.generated(p, t).strip()) for t in [g, *s]] for p, g, s in zip(problems, greedy, sampled)]
    return ([fmt.program(p, t) for p, t in zip(problems, greedy)],
            [[fmt.program(p, t) for t in s] for p, s in zip(problems, sampled)], nonempty)  # fmt: skip


def _with_tests(problem: dict, program: str) -> str:
    return program + "\n\n" + problem["test"]


def check_programs(problem: dict, programs: Sequence[str], time_limit_s: float = 5.0) -> list[bool]:
    """Each program against the problem's official ``check`` in the sandbox, every one with the
    full limit (the benchmark's own semantics: no limits calibrated from the other samples)."""
    if not programs:
        return []
    matrix = run_pass_matrix([_with_tests(problem, p) for p in programs], [f"check({problem['entry_point']})"], time_limit_s=time_limit_s,
                             calibration=None)  # fmt: skip
    return [bool(x) for x in matrix.passed[:, 0]]


def humaneval_scores(problems: Sequence[dict], greedy: Sequence[str], sampled: Sequence[Sequence[str]], ks: Sequence[int], time_limit_s: float = 5.0,
                     progress: Callable[[int], None] | None = None, nonempty: Sequence[Sequence[bool]] | None = None,
                     ) -> tuple[dict[str, float], Samples]:  # fmt: skip
    """pass@1 (greedy) and pass@k (sampled, unbiased estimator) over ``problems``; the per-problem
    values behind them are in ``samples.items``; ``progress(problems checked)`` after each. Beside
    them, per problem, the share of its programs that define the entry point with a body and (given
    ``nonempty`` from ``sample_humaneval``) of its replies that are not empty: a reply that wrote
    nothing is shown as such, not only as failing code."""
    greedy_ok, sampled_ok = [], []
    if progress:
        progress(0)
    for i, (p, g, s) in enumerate(zip(problems, greedy, sampled), 1):
        verdicts = check_programs(p, [g, *s], time_limit_s)
        if progress:
            progress(i)
        greedy_ok.append(verdicts[0])
        sampled_ok.append(verdicts[1:])
    samples = Samples(list(greedy), [list(s) for s in sampled], greedy_ok, sampled_ok)
    samples.items = humaneval_items(samples, ks)
    samples.items["humaneval_defines_entry"] = np.asarray(
        [
            np.mean([defines_entry_point(prog, p["entry_point"]) for prog in [g, *s]])
            for p, g, s in zip(problems, greedy, sampled)
        ],
        dtype=float,
    )
    if nonempty is not None:
        samples.items["humaneval_nonempty"] = np.asarray([np.mean(flags) for flags in nonempty], dtype=float)
    return summarize(samples.items), samples


def humaneval_items(samples: Samples, ks: Sequence[int]) -> Items:
    """Per problem: greedy pass (0/1) and, for each k ≤ the samples drawn, the pass@k estimate."""
    items = {"humaneval_pass@1_greedy": np.asarray(samples.greedy_ok, dtype=float)}
    n = min((len(s) for s in samples.sampled_ok), default=0)
    for k in ks:
        if 1 <= k <= n:
            items[f"humaneval_pass@{k}"] = np.asarray([pass_at_k(len(s), sum(s), k) for s in samples.sampled_ok], dtype=float)
    return items


def reply_logps(model, tokenizer, examples: Sequence[dict], per_token: bool = False) -> np.ndarray:
    """Summed log-probability of each example's chosen and rejected reply given its prompt: [n, 2]
    (``per_token``: divided by the reply's tokens, so a longer program is not less likely for its length).

    One sequence at a time (exact: no padding effects); prompt and reply are tokenized apart, as TRL
    does. The prompt runs once and both replies continue from its cache (the same numbers as the whole
    sequence, at about half the cost on a CPU)."""
    import copy

    import torch

    device = next(model.parameters()).device
    out = []
    for ex in examples:
        prompt = tokenizer.apply_chat_template(ex["prompt"], tokenize=False, add_generation_prompt=True)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            head = model(torch.tensor([p_ids], device=device), use_cache=True, logits_to_keep=1)
        for side in ("chosen", "rejected"):
            r_ids = tokenizer(ex[side][0]["content"], add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                tail = model(
                    torch.tensor([r_ids], device=device), past_key_values=copy.deepcopy(head.past_key_values), use_cache=True
                )
            logits = torch.cat([head.logits[0, -1:], tail.logits[0, :-1]]).float()
            total = float(torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(r_ids, device=device)[:, None]).sum())
            out.append(total / len(r_ids) if per_token else total)
    return np.asarray(out, dtype=float).reshape(-1, 2)


def model_logps(model_path, examples: Sequence[dict], per_token: bool = False) -> np.ndarray:
    """``reply_logps`` of the checkpoint at ``model_path`` as saved (torch; CUDA when present)."""
    if not examples:
        return np.zeros((0, 2))
    scorer = TransformersBackend(model_path)
    return reply_logps(scorer.model, scorer.tokenizer, examples, per_token)


def preference_items(policy: np.ndarray, reference: np.ndarray, prefix: str = "heldout") -> Items:
    """Per pair, from [n, 2] (chosen, rejected) log-probs: logp and reward correctness (1 right,
    0 wrong, 0.5 tie) and the reward margin, named ``<prefix>_…``; empty when there are no pairs.

    ``logp_accuracy``: the model gives chosen more probability than rejected. ``reward_accuracy``:
    its gain over the reference is larger on chosen (DPO's implicit reward; 0.5 for the reference).
    """
    if len(policy) == 0:
        return {}

    def correct(x: np.ndarray) -> np.ndarray:
        return (x > 0) + 0.5 * (x == 0)

    reward = (policy[:, 0] - reference[:, 0]) - (policy[:, 1] - reference[:, 1])
    return {f"{prefix}_logp_accuracy": correct(policy[:, 0] - policy[:, 1]), f"{prefix}_reward_accuracy": correct(reward),
            f"{prefix}_reward_margin": np.asarray(reward, dtype=float)}  # fmt: skip


def groundtruth_pairs(problems: Sequence[dict], base: Samples) -> list[dict]:
    """Pairs that need no pipeline data: per problem where the base model wrote a program that fails
    the official tests (greedy first, else its first failing sample), the canonical solution as
    chosen and that program as rejected, asked as the pipeline asks (``eval_formats.task``). Does a
    checkpoint's implicit reward prefer correct code more than the base model did?"""
    pairs = []
    for j, p in enumerate(problems):
        failing = [
            prog for prog, ok in zip([base.greedy[j], *base.sampled[j]], [base.greedy_ok[j], *base.sampled_ok[j]]) if not ok
        ]
        if failing:
            pairs.append(
                {
                    "prompt": task(p),
                    "chosen": p["prompt"] + p["canonical_solution"],
                    "rejected": failing[0],
                    "task_id": p["task_id"],
                }
            )
    return pairs


def efficiency_items(
    problems: Sequence[dict], before: Sequence[str], after: Sequence[str], repetitions: int = 5, min_ratio: float = 1.1
) -> Items:
    """Per problem both greedy programs solve (and both pass when timed): the speed-up (before time /
    after time) and whether the trained model's solution is ≥10% faster beyond measured noise (0/1).
    ``efficiency_problems`` holds the speed-ups again: its metric is their count."""
    speedups, faster = [], []
    for p, b, a in zip(problems, before, after):
        tb, ta = time_candidates([_with_tests(p, b), _with_tests(p, a)], [f"check({p['entry_point']})"], repetitions=repetitions)
        if not (tb.all_passed and ta.all_passed) or ta.median_ns <= 0 or tb.median_ns <= 0:
            continue
        speedups.append(tb.median_ns / ta.median_ns)
        faster.append(float(compare(ta, tb, min_ratio=min_ratio) == -1))
    speedups_arr = np.asarray(speedups, dtype=float)
    return {
        "efficiency_problems": speedups_arr,
        "efficiency_speedup": speedups_arr,
        "efficiency_faster_share": np.asarray(faster, dtype=float),
    }


@dataclass(frozen=True)
class MetricKind:
    """How a metric aggregates its items and how its uncertainty is stated.

    ``method``: 'wilson' (means of items in [0, 1]: 0/1 outcomes, ties counted half, per-problem
    pass@k estimates and shares; Wilson bounds stay honest at 0 or n successes and small n, where a
    bootstrap collapses to a point), 'bootstrap' (unbounded means: margins, geometric means) or None
    (counts: no interval, no verdict). ``null``: for metrics
    measured on the checkpoint only (already relative to the base), the value meaning "no
    difference" that its interval is tested against; None there means no verdict."""

    method: str | None
    statistic: Callable = np.mean
    null: float | None = None


def metric_kind(metric: str) -> MetricKind:
    if metric == "efficiency_problems":
        return MetricKind(None, len)
    if metric == "efficiency_speedup":
        return MetricKind("bootstrap", geometric_mean, null=1.0)
    if metric == "efficiency_faster_share":  # a one-sided share with no "no difference" value: the speed-up carries the verdict
        return MetricKind("wilson")
    if metric.startswith("humaneval_") or metric.endswith("_accuracy"):  # pass@k estimates, shares, accuracies: in [0, 1]
        return MetricKind("wilson")
    return MetricKind("bootstrap")  # reward margins, anything new: an unbounded mean


def summarize(items: Items) -> dict[str, float]:
    """Each metric's value from its items (metrics without items are left out; counts give 0)."""
    out = {}
    for metric, values in items.items():
        kind = metric_kind(metric)
        if kind.method is None:
            out[metric] = float(len(values))
        elif len(values):
            out[metric] = float(kind.statistic(np.asarray(values, dtype=float)))
    return out


def value_interval(metric: str, values) -> tuple[float | None, float | None, str | None]:
    """(low, high, method) of a metric's value; (None, None, None) for counts and empty items."""
    kind, data = metric_kind(metric), np.asarray(values, dtype=float)
    if kind.method is None or len(data) == 0 or (kind.method == "bootstrap" and len(data) < 2):
        return (None, None, None)  # counts, nothing, or one unbounded value: a bootstrap of it is a point
    low, high = (
        wilson_interval(float(data.sum()), len(data)) if kind.method == "wilson" else bootstrap_interval(data, kind.statistic)
    )
    return (low, high, kind.method)


def change_interval(metric: str, before, after) -> tuple[float | None, float | None]:
    """The checkpoint's change in ``metric`` over the shared items: Newcombe for [0, 1] items, a
    paired bootstrap for unbounded ones — none below 2 items, where a bootstrap is a point."""
    kind = metric_kind(metric)
    if kind.method == "wilson":
        return newcombe_change_interval(before, after)
    if len(before) < 2:
        return (None, None)
    return paired_change_interval(before, after, kind.statistic)


def metric_records(base: Items, checkpoint: Items) -> list[dict]:
    """One record per (metric, role) with value, n, ci_low, ci_high, ci_method; checkpoint records
    also carry change (vs base), change_ci_low/high (paired bootstrap over the shared items) and
    the verdict. Metrics without a base counterpart (efficiency: already relative) get no change:
    their verdict tests the checkpoint value's own interval against the metric's null (1.0 for
    the speed-up). Every verdict also needs the exact sign test over the items (p < 0.05). Counts
    get neither interval nor verdict."""
    records = []
    for role, items in (("base", base), ("checkpoint", checkpoint)):
        for metric, values in items.items():
            kind, data = metric_kind(metric), np.asarray(values, dtype=float)
            if kind.method is not None and len(data) == 0:
                continue
            low, high, method = value_interval(metric, data)
            rec: dict[str, Any] = {"role": role, "metric": metric, "value": summarize({metric: data})[metric], "n": len(data), "ci_low": low, "ci_high": high,
                   "ci_method": method, "change": None, "change_ci_low": None, "change_ci_high": None, "verdict": None}  # fmt: skip
            if role == "checkpoint" and kind.method is not None:
                before = base.get(metric)
                if before is not None and len(before) == len(data):
                    rec["change"] = rec["value"] - summarize({metric: np.asarray(before, dtype=float)})[metric]
                    rec["change_ci_low"], rec["change_ci_high"] = change_interval(metric, before, data)
                    rec["verdict"] = verdict(
                        len(data), rec["change_ci_low"], rec["change_ci_high"], differences=data - np.asarray(before, dtype=float)
                    )
                elif before is None and kind.null is not None:  # the speed-up: per-problem log ratios against log 1
                    rec["verdict"] = verdict(len(data), low, high, kind.null, differences=np.log(data) - math.log(kind.null))
            records.append(rec)
    return records
