"""Evaluation core: pass@k estimator, HumanEval through the sandbox, preference accuracy, efficiency,
and the statistics behind the before/after table (intervals, paired changes, verdicts)."""

import math

import numpy as np
import pytest

from codedpo_assets.decontam import humaneval_problems
from codedpo_assets.eval_formats import FORMATS, defines_entry_point, task
from codedpo_assets.evaluation import (
    check_programs,
    efficiency_items,
    groundtruth_pairs,
    humaneval_scores,
    metric_records,
    pass_at_k,
    preference_items,
    reply_logps,
    sample_humaneval,
    summarize,
)
from codedpo_assets.intervals import (
    bootstrap_interval,
    geometric_mean,
    newcombe_change_interval,
    paired_change_interval,
    sign_test_p,
    verdict,
    wilson_interval,
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
    assert metrics["humaneval_pass@1"] == pytest.approx(1 / 3) and metrics["humaneval_pass@2"] == pytest.approx(
        pass_at_k(3, 1, 2)
    )
    assert metrics["humaneval_pass@3"] == 1.0 and samples.sampled_ok[0] == [True, False, False]
    items = samples.items  # the per-problem values behind each metric
    assert items["humaneval_pass@1_greedy"].tolist() == [1.0] * 4 and items["humaneval_pass@2"] == pytest.approx(
        [pass_at_k(3, 1, 2)] * 4
    )
    assert {m: float(np.mean(v)) for m, v in items.items()} == pytest.approx(metrics)


def test_each_format_asks_stops_and_assembles_a_program():
    problems = humaneval_problems()[:3]
    p = problems[1]  # separate_paren_groups: imports List in its header
    body = p["canonical_solution"]
    replies = {  # what a backend returns: any prefill + the continuation
        "prefilled_signature": FORMATS["prefilled_signature"].messages(p)[-1]["content"] + body,
        "chat_function": "```python\n" + p["prompt"] + body,
        "bare_completion": body,
    }
    for name, reply in replies.items():
        fmt = FORMATS[name]
        program = fmt.program(p, reply)
        assert check_programs(p, [program]) == [True], name  # every format turns a right reply into a passing program
        assert defines_entry_point(program, p["entry_point"]) and fmt.generated(p, reply).strip()
    assert FORMATS["bare_completion"].messages(p) == [{"role": "completion", "content": p["prompt"]}]
    assert (
        "```" in FORMATS["chat_function"].stop and "\ndef " not in FORMATS["chat_function"].stop
    )  # helpers after the function stay
    empty = FORMATS["prefilled_signature"].messages(p)[-1]["content"]  # the model closed the block at once
    assert not FORMATS["prefilled_signature"].generated(p, empty).strip()
    assert not defines_entry_point(FORMATS["prefilled_signature"].program(p, empty), p["entry_point"])  # a docstring is no body
    assert FORMATS["chat_function"].program(p, "```python\nprint('hi')\n") == ""  # no function: no program
    seen = []

    def generate(jobs, params):
        seen.append((len(jobs), params.temperature, params.stop))
        by_task = {task(q): q for q in problems}
        return ["```python\n" if i == 2 else "```python\n" + (q := by_task[m[1]["content"].split("\nReply")[0]])["prompt"] + q["canonical_solution"]
                for m, i in jobs]  # fmt: skip

    greedy, sampled, nonempty = sample_humaneval(
        generate, problems, n=2, temperature=0.8, max_new_tokens=32, fmt=FORMATS["chat_function"]
    )
    assert seen[0][:2] == (3, 0.0) and seen[1][:2] == (6, 0.8) and len(sampled[1]) == 2
    assert nonempty == [[True, True, False]] * 3  # greedy first; every second sample wrote nothing
    metrics, _ = humaneval_scores(problems, greedy, sampled, ks=[1], nonempty=nonempty)
    assert metrics["humaneval_nonempty"] == pytest.approx(2 / 3) and metrics["humaneval_defines_entry"] == pytest.approx(2 / 3)
    assert metrics["humaneval_pass@1_greedy"] == 1.0 and metrics["humaneval_pass@1"] == pytest.approx(0.5)


def test_groundtruth_pairs_take_the_base_models_failing_program():
    problems = humaneval_problems()[:3]
    right = [p["prompt"] + p["canonical_solution"] for p in problems]
    wrong = [p["prompt"] + "    return None\n" for p in problems]
    _, base = humaneval_scores(problems, [right[0], wrong[1], right[2]], [[right[0]], [right[1]], [wrong[2]]], ks=[1])
    pairs = groundtruth_pairs(problems, base)
    assert [p["task_id"] for p in pairs] == [problems[1]["task_id"], problems[2]["task_id"]]  # problem 0: the base never failed
    assert pairs[0]["rejected"] == wrong[1] and pairs[1]["rejected"] == wrong[2] and pairs[0]["chosen"] == right[1]
    assert problems[1]["prompt"] in pairs[0]["prompt"]


def test_preference_accuracy_counts_ties_half():
    ref = np.array([[-5.0, -5.0], [-3.0, -4.0], [-6.0, -2.0]])
    assert summarize(preference_items(ref, ref)) == {
        "heldout_logp_accuracy": pytest.approx(0.5),
        "heldout_reward_accuracy": 0.5,
        "heldout_reward_margin": 0.0,
    }
    policy = ref + np.array([[1.0, -1.0], [0.5, 0.0], [-1.0, 0.0]])  # gains: +2, +0.5, -1
    out = summarize(preference_items(policy, ref))
    assert out["heldout_reward_accuracy"] == pytest.approx(2 / 3) and out["heldout_reward_margin"] == pytest.approx(0.5)
    assert summarize(preference_items(np.zeros((0, 2)), np.zeros((0, 2)))) == {}
    items = preference_items(policy, ref)  # per pair: correctness (ties 0.5) and margin
    assert items["heldout_reward_accuracy"].tolist() == [1.0, 1.0, 0.0] and items["heldout_reward_margin"].tolist() == [
        2.0,
        0.5,
        -1.0,
    ]
    assert preference_items(ref, ref)["heldout_logp_accuracy"].tolist() == [0.5, 1.0, 0.0]


def test_reply_logps_are_negative_and_deterministic(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
    ex = [
        chat_example(
            {"prompt": "Add.", "chosen": "def add(a, b):\n    return a + b\n", "rejected": "def add(a, b):\n    return a\n"}
        )
    ]
    a, b = reply_logps(model, tok, ex), reply_logps(model, tok, ex)
    assert a.shape == (1, 2) and (a < 0).all() and np.array_equal(a, b)
    # the prompt's cache gives what the whole sequence gives, per token too
    import torch

    p_ids = tok(tok.apply_chat_template(ex[0]["prompt"], tokenize=False, add_generation_prompt=True), add_special_tokens=False)[
        "input_ids"
    ]
    whole = []
    for side in ("chosen", "rejected"):
        r_ids = tok(ex[0][side][0]["content"], add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([p_ids + r_ids])).logits[0, len(p_ids) - 1 : -1]
        whole.append(float(torch.log_softmax(logits, -1).gather(1, torch.tensor(r_ids)[:, None]).sum()) / len(r_ids))
    assert reply_logps(model, tok, ex, per_token=True)[0] == pytest.approx(whole, rel=1e-5)


def test_efficiency_sees_a_genuinely_faster_solution():
    problem = humaneval_problems()[0]  # has_close_elements: quadratic canonical solution
    fast = problem["prompt"] + problem["canonical_solution"]
    slow = fast.replace(
        "    for idx, elem in enumerate(numbers):",
        "    for _ in range(3000): sorted(numbers)\n    for idx, elem in enumerate(numbers):",
    )
    out = summarize(efficiency_items([problem], [slow], [fast]))
    assert out["efficiency_problems"] == 1 and out["efficiency_speedup"] > 1.5 and out["efficiency_faster_share"] == 1.0
    assert summarize(efficiency_items([problem], [fast], [problem["prompt"] + "    return None\n"])) == {
        "efficiency_problems": 0.0
    }
    items = efficiency_items([problem], [fast], [problem["prompt"] + "    return None\n"])
    assert all(len(v) == 0 for v in items.values())
    (count,) = metric_records({}, items)  # nothing timed: only the count, without interval or verdict
    assert (
        count["metric"] == "efficiency_problems" and count["value"] == 0 and count["ci_low"] is None and count["verdict"] is None
    )


def test_wilson_interval_matches_known_values():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(82, 164) == pytest.approx((0.4244, 0.5756), abs=1e-4)
    low, high = wilson_interval(0.5, 1)  # a tie counted half: fractional successes are allowed
    assert 0 < low < 0.5 < high < 1 and high - 0.5 == pytest.approx(0.5 - low)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_bootstrap_is_deterministic_and_covers_the_true_mean():
    rng = np.random.default_rng(7)
    data = rng.normal(3.0, 1.0, size=200)
    assert bootstrap_interval(data, seed=1) == bootstrap_interval(data, seed=1) != bootstrap_interval(data, seed=2)
    low, high = bootstrap_interval(data)
    assert low < data.mean() < high and 0.15 < high - low < 0.4  # ≈ 2 × 1.96 / sqrt(200) = 0.28
    covered = 0
    for i in range(100):  # coverage sanity: a 95% interval holds the true mean most of the time
        lo, hi = bootstrap_interval(rng.normal(3.0, 1.0, size=40), n_boot=500, seed=i)
        covered += lo <= 3.0 <= hi
    assert covered >= 85
    assert all(math.isnan(x) for x in bootstrap_interval([])) and bootstrap_interval([0.7]) == (0.7, 0.7)
    ratios = np.array([1.5, 2.0, 1.2, 1.8, 1.6] * 4)
    low, high = bootstrap_interval(ratios, geometric_mean)
    assert low <= geometric_mean(ratios) <= high and low > 1.0


def test_paired_change_resamples_items_jointly():
    before = np.arange(30, dtype=float)
    assert paired_change_interval(before, before + 1.0) == pytest.approx((1.0, 1.0))  # same shift on every item: no spread
    unpaired = bootstrap_interval(before + 1.0)
    low, high = paired_change_interval(before, before + np.tile([0.5, 1.5], 15))
    assert 0.5 < low < 1.0 < high < 1.5 and high - low < (unpaired[1] - unpaired[0]) / 5  # item-to-item spread cancels
    assert paired_change_interval([0.0, 1.0], [1.0, 1.0], seed=3) == paired_change_interval([0.0, 1.0], [1.0, 1.0], seed=3)
    with pytest.raises(ValueError):
        paired_change_interval([1.0], [1.0, 2.0])


def test_one_heldout_pair_is_not_enough_data():
    """The report: reward accuracy 0.5 -> 0.0 on one pair read as 'worse by 0.5'."""
    ref = np.array([[-5.0, -6.0]])
    records = {
        (r["metric"], r["role"]): r
        for r in metric_records(preference_items(ref, ref), preference_items(ref + np.array([[-1.0, 0.0]]), ref))
    }
    base, ckpt = records["heldout_reward_accuracy", "base"], records["heldout_reward_accuracy", "checkpoint"]
    assert (base["value"], ckpt["value"], ckpt["change"], ckpt["n"]) == (0.5, 0.0, -0.5, 1)
    assert ckpt["verdict"] == "not enough data (n = 1)" and base["verdict"] is None
    assert (
        base["ci_method"] == "wilson" and base["ci_low"] < 0.1 and base["ci_high"] > 0.9
    )  # the interval shows how little one pair says
    assert not any(r["verdict"] == "worse" for r in records.values())
    # the change on one pair is an interval, not the point 0.5..0.5 a paired bootstrap gives
    assert ckpt["change_ci_low"] < -0.5 < 0.0 < ckpt["change_ci_high"]
    margin = records["heldout_reward_margin", "checkpoint"]
    assert margin["change_ci_low"] is None and margin["change_ci_high"] is None  # one unbounded item: no interval at all
    assert margin["ci_low"] is None and margin["ci_high"] is None


def test_zero_successes_get_an_honest_upper_bound():
    """The report: 0 of 10 for pass@1 and pass@3 showed 0.000..0.000 while the greedy row said 0.000..0.278."""
    zeros = np.zeros(10)
    records = {(r["metric"], r["role"]): r for r in metric_records(
        {"humaneval_pass@1_greedy": zeros, "humaneval_pass@1": zeros, "humaneval_pass@3": zeros},
        {"humaneval_pass@1_greedy": zeros, "humaneval_pass@1": zeros, "humaneval_pass@3": zeros})}  # fmt: skip
    for metric in ("humaneval_pass@1_greedy", "humaneval_pass@1", "humaneval_pass@3"):
        base, ckpt = records[metric, "base"], records[metric, "checkpoint"]
        assert (base["ci_low"], round(base["ci_high"], 3)) == (0.0, 0.278), metric
        assert ckpt["change_ci_low"] < 0 < ckpt["change_ci_high"] and ckpt["verdict"] == "not enough data (n = 10)"


def test_newcombe_change_interval():
    assert newcombe_change_interval(np.zeros(10), np.ones(10))[0] > 0.4  # 0/10 -> 10/10: clearly up
    low, high = newcombe_change_interval([0.5], [0.0])
    assert -1.0 <= low < -0.5 < 0 < high <= 1.0
    assert newcombe_change_interval([0.3, 0.4], [0.3, 0.4]) == pytest.approx(
        (-newcombe_change_interval([0.3, 0.4], [0.3, 0.4])[1], newcombe_change_interval([0.3, 0.4], [0.3, 0.4])[1])
    )  # no change: symmetric around 0
    before, after = np.r_[np.ones(7), np.zeros(71)], np.r_[np.ones(15), np.zeros(63)]  # the pairing counts at large n
    assert newcombe_change_interval(before, after) == pytest.approx(paired_change_interval(before, after), abs=0.01)
    same = [1.0] * 5 + [0.0] * 5  # no item moved: not the point 0..0
    assert newcombe_change_interval(same, same)[1] > 0.3
    with pytest.raises(ValueError):
        newcombe_change_interval([1.0], [1.0, 0.0])


def test_clearly_better_large_sample_is_better_and_no_change_is_not_enough_data():
    rng = np.random.default_rng(0)
    before = (rng.random(164) < 0.3).astype(float)
    after = np.maximum(before, rng.random(164) < 0.3)  # fixes ~30% of the failures, breaks none
    pass_k_before, pass_k_after = rng.random(164) * 0.5, rng.random(164) * 0.5 + 0.3
    records = {r["metric"]: r for r in metric_records({"humaneval_pass@1_greedy": before, "humaneval_pass@5": pass_k_before},
                                                      {"humaneval_pass@1_greedy": after, "humaneval_pass@5": pass_k_after}) if r["role"] == "checkpoint"}  # fmt: skip
    greedy = records["humaneval_pass@1_greedy"]
    assert greedy["verdict"] == "better" and 0 < greedy["change_ci_low"] < greedy["change"] < greedy["change_ci_high"]
    assert (
        greedy["ci_method"] == "wilson"
        and records["humaneval_pass@5"]["ci_method"] == "wilson"  # per-problem estimates in [0, 1]
        and records["humaneval_pass@5"]["verdict"] == "better"
    )
    (worse,) = [
        r
        for r in metric_records({"humaneval_pass@1_greedy": after}, {"humaneval_pass@1_greedy": before})
        if r["role"] == "checkpoint"
    ]
    assert worse["verdict"] == "worse"
    (same,) = [
        r
        for r in metric_records({"humaneval_pass@1_greedy": before}, {"humaneval_pass@1_greedy": before})
        if r["role"] == "checkpoint"
    ]
    assert same["change"] == 0 and same["verdict"] == "not enough data (n = 164)"


def test_speedup_is_judged_by_its_own_interval_against_one():
    def ckpt(speedups):
        items = {"efficiency_problems": np.asarray(speedups), "efficiency_speedup": np.asarray(speedups),
                 "efficiency_faster_share": (np.asarray(speedups) > 1.1).astype(float)}  # fmt: skip
        return {r["metric"]: r for r in metric_records({}, items)}

    mixed = ckpt([0.8, 1.3, 0.9, 1.25, 1.1, 0.95])  # geometric mean ≈ 1.04, interval spans 1
    assert mixed["efficiency_speedup"]["ci_low"] < 1.0 < mixed["efficiency_speedup"]["ci_high"]
    assert mixed["efficiency_speedup"]["verdict"] == "not enough data (n = 6)" and mixed["efficiency_speedup"]["change"] is None
    assert mixed["efficiency_speedup"]["ci_method"] == "bootstrap" and mixed["efficiency_faster_share"]["ci_method"] == "wilson"
    assert (
        mixed["efficiency_problems"]["value"] == 6
        and mixed["efficiency_problems"]["ci_low"] is None
        and mixed["efficiency_problems"]["verdict"] is None
    )
    assert ckpt([1.5, 1.7, 1.6, 1.8, 1.55, 1.65])["efficiency_speedup"]["verdict"] == "better"
    assert ckpt([0.5, 0.6, 0.55, 0.7, 0.65, 0.6])["efficiency_speedup"]["verdict"] == "worse"
    assert (
        ckpt([1.2, 1.3, 1.25])["efficiency_speedup"]["verdict"] == "not enough data (n = 3)"
    )  # a tight interval, but 3 problems
    assert ckpt([3.0])["efficiency_speedup"]["verdict"] == "not enough data (n = 1)"  # one problem: the interval is a point


def test_verdict_needs_two_items_and_an_interval_clear_of_the_null():
    assert verdict(1, 0.2, 0.4) == "not enough data (n = 1)"
    assert verdict(50, -0.1, 0.2) == verdict(50, 0.0, 0.2) == "not enough data (n = 50)"
    assert verdict(50, 0.01, 0.2) == "better" and verdict(50, -0.3, -0.01) == "worse"
    assert verdict(10, 1.05, 1.4, null=1.0) == "better"


def test_sign_test_is_exact_and_guards_small_samples():
    assert sign_test_p([0.0, 0.0]) == 1.0  # nothing changed
    assert sign_test_p([1, 1, 1, 1]) == 0.125 and sign_test_p([1] * 6) == 0.03125
    assert sign_test_p([1] * 8 + [-1]) == pytest.approx(2 * 10 / 512)
    # 4 of 20 items up by one, none down: the paired bootstrap interval of an unbounded mean clears 0,
    # the sign test does not
    before = np.zeros(20)
    after = np.r_[np.ones(4), np.zeros(16)]

    def checkpoint(metric: str) -> dict:
        (rec,) = [r for r in metric_records({metric: before}, {metric: after}) if r["role"] == "checkpoint"]
        return rec

    rec = checkpoint("heldout_reward_margin")
    assert rec["change_ci_low"] > 0 and rec["verdict"] == "not enough data (n = 20)"
    assert checkpoint("humaneval_pass@1_greedy")["verdict"] == "not enough data (n = 20)"  # 4 of 20 fixed
    after[4:8] = 1  # 8 of 20
    assert checkpoint("heldout_reward_margin")["verdict"] == checkpoint("humaneval_pass@1_greedy")["verdict"] == "better"
