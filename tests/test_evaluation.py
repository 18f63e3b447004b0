"""Evaluation core: pass@k estimator, HumanEval through the sandbox, preference accuracy, efficiency."""

import math

import numpy as np
import pytest

from codedpo_assets.decontam import humaneval_problems
from codedpo_assets.evaluation import (
    completion_program,
    efficiency,
    humaneval_messages,
    humaneval_scores,
    pass_at_k,
    preference_accuracy,
    reply_logps,
    sample_humaneval,
)
from codedpo_assets.training import chat_example


def test_pass_at_k_matches_hand_computed_values():
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))  # 1 - 3/10 = 0.7
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert pass_at_k(3, 2, 2) == 1.0  # fewer wrong samples than k: some draw is always right
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_humaneval_canonical_solutions_pass_and_broken_ones_fail():
    problems = humaneval_problems()[:4]
    good = [p["prompt"] + p["canonical_solution"] for p in problems]
    bad = [p["prompt"] + "    return None\n" for p in problems]
    metrics, samples = humaneval_scores(problems, good, [[g, b, b] for g, b in zip(good, bad)], ks=[1, 2, 3])
    assert metrics["humaneval_pass@1_greedy"] == 1.0
    assert metrics["humaneval_pass@1"] == pytest.approx(1 / 3) and metrics["humaneval_pass@2"] == pytest.approx(pass_at_k(3, 1, 2))
    assert metrics["humaneval_pass@3"] == 1.0 and samples.sampled_ok[0] == [True, False, False]


def test_sampling_prefills_the_signature_and_keeps_it_in_the_program():
    problems = humaneval_problems()[:2]
    seen = []

    def generate(jobs, params):
        seen.append((len(jobs), params.temperature, params.stop))
        return [m[-1]["content"] + "    return 1\n" for m, _ in jobs]  # a backend returns prefix + completion

    greedy, sampled = sample_humaneval(generate, problems, n=3, temperature=0.8, max_new_tokens=32)
    assert seen[0][:2] == (2, 0.0) and seen[1][:2] == (6, 0.8) and "```" in seen[0][2]
    assert greedy[0].startswith(problems[0]["prompt"]) and greedy[0].endswith("return 1\n") and len(sampled[1]) == 3
    assert humaneval_messages(problems[0])[-1]["role"] == "assistant"
    assert completion_program(problems[0], "    return 2\n") == problems[0]["prompt"] + "    return 2\n"


def test_preference_accuracy_counts_ties_half():
    ref = np.array([[-5.0, -5.0], [-3.0, -4.0], [-6.0, -2.0]])
    assert preference_accuracy(ref, ref) == {"heldout_logp_accuracy": pytest.approx(0.5), "heldout_reward_accuracy": 0.5, "heldout_reward_margin": 0.0}
    policy = ref + np.array([[1.0, -1.0], [0.5, 0.0], [-1.0, 0.0]])  # gains: +2, +0.5, -1
    out = preference_accuracy(policy, ref)
    assert out["heldout_reward_accuracy"] == pytest.approx(2 / 3) and out["heldout_reward_margin"] == pytest.approx(0.5)
    assert preference_accuracy(np.zeros((0, 2)), np.zeros((0, 2))) == {}


def test_reply_logps_are_negative_and_deterministic(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
    ex = [chat_example({"prompt": "Add.", "chosen": "def add(a, b):\n    return a + b\n", "rejected": "def add(a, b):\n    return a\n"})]
    a, b = reply_logps(model, tok, ex), reply_logps(model, tok, ex)
    assert a.shape == (1, 2) and (a < 0).all() and np.array_equal(a, b)


def test_efficiency_sees_a_genuinely_faster_solution():
    problem = humaneval_problems()[0]  # has_close_elements: quadratic canonical solution
    fast = problem["prompt"] + problem["canonical_solution"]
    slow = fast.replace("    for idx, elem in enumerate(numbers):", "    for _ in range(3000): sorted(numbers)\n    for idx, elem in enumerate(numbers):")
    out = efficiency([problem], [slow], [fast])
    assert out["efficiency_problems"] == 1 and out["efficiency_speedup"] > 1.5 and out["efficiency_faster_share"] == 1.0
    assert efficiency([problem], [fast], [problem["prompt"] + "    return None\n"]) == {"efficiency_problems": 0.0}
