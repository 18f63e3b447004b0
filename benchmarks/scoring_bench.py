"""Scoring benchmark: speed of the vectorized rankers, and ranking quality on HumanEval.

Run: .venv/bin/python benchmarks/scoring_bench.py   (figures: docs/benchmarks.md)

Quality: for each HumanEval problem the candidates are the canonical solution plus AST mutants,
the tests are the official asserts (one statement each, `candidate` → entry point) plus
corrupted copies (expected value changed). Ground truth: a candidate is correct when it passes
every official assert. For each ranker: how often the top-ranked set is all-correct, and the AUC
of scores for correct vs wrong candidates (per problem, averaged).
"""

import ast
import gzip
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codedpo_assets.decontam import humaneval_path
from codedpo_assets.normalize import normalized_hash
from codedpo_assets.sandbox import run_pass_matrix
from codedpo_assets.scoring import RANKERS, code_scores, top_set

MUTANTS, MAX_TESTS = 6, 8
SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
         ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.And: ast.Or, ast.Or: ast.And}  # fmt: skip


def speed() -> None:
    rng = np.random.default_rng(0)
    batch = rng.random((1000, 15, 15)) < 0.4
    for method in RANKERS:
        code_scores(batch[:10], method)
        t = time.perf_counter()
        code_scores(batch, method)
        print(f"speed: {method:18s} 1000 prompts x 15 codes x 15 tests in {time.perf_counter() - t:.3f} s")


def mutate(code: str, rng: random.Random) -> str | None:
    tree = ast.parse(code)
    sites = [n for n in ast.walk(tree) if isinstance(n, (ast.Compare, ast.BinOp, ast.BoolOp, ast.Constant, ast.Return))]
    if not sites:
        return None
    node = rng.choice(sites)
    if isinstance(node, ast.Compare) and type(node.ops[0]) in SWAPS:
        node.ops[0] = SWAPS[type(node.ops[0])]()
    elif isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in SWAPS:
        node.op = SWAPS[type(node.op)]()
    elif isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        node.value += 1
    elif isinstance(node, ast.Return) and node.value is not None:
        node.value = ast.Constant(None)
    else:
        return None
    return ast.unparse(tree)


def official_asserts(problem: dict) -> list[str]:
    tree = ast.parse(problem["test"])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            text = ast.unparse(ast.Assert(test=node.test, msg=None)).replace("candidate(", problem["entry_point"] + "(")
            out.append(text)
    return out


def corrupt(test: str) -> str | None:
    tree = ast.parse(test)
    cmp = tree.body[0].test
    if not (isinstance(cmp, ast.Compare) and isinstance(cmp.ops[0], ast.Eq)):
        return None
    right = cmp.comparators[0]
    try:
        value = ast.literal_eval(right)
    except ValueError:
        return None
    bad = {
        bool: lambda v: not v,
        int: lambda v: v + 1,
        float: lambda v: v + 1.0,
        str: lambda v: v + "x",
        list: lambda v: [*v, 0],
    }.get(type(value))
    if bad is None:
        return None
    cmp.comparators[0] = ast.parse(repr(bad(value)), mode="eval").body
    return ast.unparse(tree)


def auc(scores: np.ndarray, correct: np.ndarray) -> float | None:
    pos, neg = scores[correct], scores[~correct]
    if not len(pos) or not len(neg):
        return None
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def quality() -> None:
    with gzip.open(humaneval_path(), "rt") as fh:
        problems = [json.loads(line) for line in fh]
    rng = random.Random(0)
    results = {m: {"top_all_correct": [], "auc": []} for m in RANKERS}
    used = 0
    for p in problems:
        canonical = p["prompt"] + p["canonical_solution"]
        official = official_asserts(p)[:MAX_TESTS]
        if not official:
            continue
        corrupted = [c for c in (corrupt(t) for t in official) if c][: max(1, len(official) // 2)]
        codes, seen = [canonical], {normalized_hash(canonical)}
        for _ in range(MUTANTS * 5):
            m = mutate(canonical, rng)
            if m and normalized_hash(m) not in seen:
                seen.add(normalized_hash(m))
                codes.append(m)
            if len(codes) > MUTANTS:
                break
        tests = official + corrupted
        matrix = run_pass_matrix(codes, tests, time_limit_s=2.0)
        correct = matrix.passed[:, : len(official)].all(axis=1)
        if correct.all() or not correct.any():
            continue  # every mutant survived (or the canonical failed): nothing to rank
        used += 1
        for method in RANKERS:
            scores = code_scores(matrix.passed, method, seed=used, fingerprints=matrix.fingerprint, inputs=matrix.inputs)
            results[method]["top_all_correct"].append(bool(correct[top_set(scores)].all()))
            a = auc(scores, correct)
            if a is not None:
                results[method]["auc"].append(a)
    print(
        f"quality: {used} HumanEval problems with >=1 wrong mutant (of {len(problems)}); candidates = canonical + up to {MUTANTS} mutants"
    )
    for method in RANKERS:
        r = results[method]
        print(f"  {method:18s} top-ranked all correct {np.mean(r['top_all_correct']):.3f}   AUC {np.mean(r['auc']):.3f}")


if __name__ == "__main__":
    speed()
    quality()
