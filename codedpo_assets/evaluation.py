"""Before/after evaluation through our own sandbox: HumanEval pass@k, held-out preference accuracy,
and efficiency of solutions both models get right (the paper's speed-up measure).

Pure core (no Dagster). Model outputs come from any generation backend; log-probabilities from a
Hugging Face causal LM.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from codedpo_assets.generation.backends import GenerationParams, Messages
from codedpo_assets.generation.tasks import FENCE, SYSTEM
from codedpo_assets.sandbox import run_pass_matrix
from codedpo_assets.sandbox.timing import compare, time_candidates

# HumanEval's usual stop sequences, plus the closing fence of the prefilled code block.
HUMANEVAL_STOP = (FENCE, "\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert ")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k) for n samples, c correct."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def humaneval_messages(problem: dict) -> Messages:
    """Chat prompt with the function's signature + docstring prefilled: the model writes the body."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Complete this Python function:\n{FENCE}python\n{problem['prompt']}{FENCE}"},
        {"role": "assistant", "content": f"{FENCE}python\n{problem['prompt']}"},
    ]


def completion_program(problem: dict, text: str) -> str:
    """The program a sample defines: the reply without its opening fence (prefix included by the backend)."""
    head = f"{FENCE}python\n"
    return text[len(head) :] if text.startswith(head) else problem["prompt"] + text


@dataclass
class Samples:
    """Per problem: the greedy program and ``n`` sampled programs, with sandbox verdicts."""

    greedy: list[str]
    sampled: list[list[str]]
    greedy_ok: list[bool]
    sampled_ok: list[list[bool]]


Generate = Callable[[list[tuple[Messages, int]], GenerationParams], list[str]]  # (messages, sample index) jobs → texts


def sample_humaneval(generate: Generate, problems: Sequence[dict], n: int, temperature: float, max_new_tokens: int) -> tuple[list[str], list[list[str]]]:
    """Greedy program + ``n`` sampled programs per problem (two batched generation calls)."""
    greedy = generate([(humaneval_messages(p), 0) for p in problems], GenerationParams(0.0, 1.0, max_new_tokens, HUMANEVAL_STOP))
    sampled: list[list[str]] = [[] for _ in problems]
    if n:
        params = GenerationParams(temperature, 1.0, max_new_tokens, HUMANEVAL_STOP)
        texts = generate([(humaneval_messages(p), i + 1) for p in problems for i in range(n)], params)
        sampled = [texts[j * n : (j + 1) * n] for j in range(len(problems))]
    return ([completion_program(p, t) for p, t in zip(problems, greedy)],
            [[completion_program(p, t) for t in s] for p, s in zip(problems, sampled)])  # fmt: skip


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


def humaneval_scores(problems: Sequence[dict], greedy: Sequence[str], sampled: Sequence[Sequence[str]], ks: Sequence[int], time_limit_s: float = 5.0) -> tuple[dict[str, float], Samples]:
    """pass@1 (greedy) and pass@k (sampled, unbiased estimator) over ``problems``."""
    greedy_ok, sampled_ok = [], []
    for p, g, s in zip(problems, greedy, sampled):
        verdicts = check_programs(p, [g, *s], time_limit_s)
        greedy_ok.append(verdicts[0])
        sampled_ok.append(verdicts[1:])
    metrics = {"humaneval_pass@1_greedy": float(np.mean(greedy_ok)) if greedy_ok else 0.0}
    n = min((len(s) for s in sampled), default=0)
    for k in ks:
        if 1 <= k <= n:
            metrics[f"humaneval_pass@{k}"] = float(np.mean([pass_at_k(len(s), sum(s), k) for s in sampled_ok]))
    return metrics, Samples(list(greedy), [list(s) for s in sampled], greedy_ok, sampled_ok)


def reply_logps(model, tokenizer, examples: Sequence[dict]) -> np.ndarray:
    """Summed log-probability of each example's chosen and rejected reply given its prompt: [n, 2].

    One sequence at a time (exact: no padding effects); prompt and reply are tokenized apart, as TRL does."""
    import torch

    device = next(model.parameters()).device
    out = []
    for ex in examples:
        prompt = tokenizer.apply_chat_template(ex["prompt"], tokenize=False, add_generation_prompt=True)
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        for side in ("chosen", "rejected"):
            r_ids = tokenizer(ex[side][0]["content"], add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([p_ids + r_ids], device=device)).logits[0, len(p_ids) - 1 : -1].float()
            out.append(float(torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(r_ids, device=device)[:, None]).sum()))
    return np.asarray(out, dtype=float).reshape(-1, 2)


def preference_accuracy(policy: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Held-out preference metrics from [n, 2] (chosen, rejected) log-probs; ties count half.

    ``logp_accuracy``: the model gives chosen more probability than rejected. ``reward_accuracy``:
    its gain over the reference is larger on chosen (DPO's implicit reward; 0.5 for the reference).
    """
    if len(policy) == 0:
        return {}

    def acc(x: np.ndarray) -> float:
        return float(np.mean((x > 0) + 0.5 * (x == 0)))

    reward = (policy[:, 0] - reference[:, 0]) - (policy[:, 1] - reference[:, 1])
    return {"heldout_logp_accuracy": acc(policy[:, 0] - policy[:, 1]), "heldout_reward_accuracy": acc(reward),
            "heldout_reward_margin": float(np.mean(reward))}  # fmt: skip


def efficiency(problems: Sequence[dict], before: Sequence[str], after: Sequence[str], repetitions: int = 5, min_ratio: float = 1.1) -> dict[str, float]:
    """On problems both greedy programs solve: geometric-mean speed-up (before time / after time) and
    the share of problems where the trained model's solution is ≥10% faster beyond measured noise."""
    speedups, faster = [], 0
    for p, b, a in zip(problems, before, after):
        tb, ta = time_candidates([_with_tests(p, b), _with_tests(p, a)], [f"check({p['entry_point']})"], repetitions=repetitions)
        if not (tb.all_passed and ta.all_passed) or ta.median_ns <= 0:
            continue
        speedups.append(tb.median_ns / ta.median_ns)
        faster += compare(ta, tb, min_ratio=min_ratio) == -1
    if not speedups:
        return {"efficiency_problems": 0.0}
    return {"efficiency_problems": float(len(speedups)), "efficiency_speedup": float(np.exp(np.mean(np.log(speedups)))),
            "efficiency_faster_share": faster / len(speedups)}  # fmt: skip
