"""The seed as a reference: pair precision and yield with the seed vs without it, and drifted seeds caught.

Run: .venv/bin/python benchmarks/seed_reference_bench.py [--limit N] [--draws R]
     (another split of the real-samples format: CODEDPO_REAL_SAMPLES=FILE)

Each problem's seed is its HumanEval canonical solution with the docstrings removed (the prompt's
helpers kept), run in the sandbox against the problem's generated tests as the product runs its
reference row. To make drift real, one problem in four (a fixed, seeded draw) gets a drifted seed
instead: another problem's solution under this entry point, or a mutant of its own (an off-by-one,
a flipped comparison, a dropped branch), mutants chosen among those that fail the official tests.

Without the seed: the product's default ranker and confidence gate (its shipped fit, threshold by
the rule inside each training fold). With it: :mod:`codedpo_assets.reference` judges the task
(agrees / overrules / conflicting / drifted); a deciding seed chooses, its confidence model is fitted
on the training folds, its threshold chosen there; a drifted seed falls back to the seed-free rule.
Every knob (the drift thresholds, the seed's confidence coefficients and gate) is chosen on
training folds of 5-fold cross-validation over problems (``--draws`` fold assignments) and scored
on the held-out fold; intervals are 95 % bootstraps over problems. A drifted seed is *caught* when
it decides nothing (flagged drifted or conflicting, or no verified test to judge it by), so that
no pair relies on it; pairs that do rely on a drifted seed are counted beside.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import itertools
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_samples
from ranking_real_bench import FOLDS, OFFICIAL_LIMIT_S, RIGGED, RIGGED_SAMPLES, Case, _pct, load_cases, pair_stats

from codedpo_assets import calibration, reference
from codedpo_assets.decontam import humaneval_problems
from codedpo_assets.evaluation import check_programs
from codedpo_assets.pairs import DEFAULT_MIN_CONFIDENCE, Pair, correctness_pair
from codedpo_assets.sandbox import run_pass_matrices
from codedpo_assets.scoring import DEFAULT_RANKER, Ranking, rank_candidates

DRIFT_SHARE, DRIFT_SEED = 0.25, 20261207
FIDELITIES = (0.3, 0.5, 0.7)  # reference.MIN_FIDELITY candidates
OVERLAPS = (0.5, 0.8)  # reference.MIN_OVERLAP candidates
MATCHES = (1.0, 0.9)  # reference.MIN_MATCH candidates
GATES = tuple(np.round(np.arange(0.0, 0.96, 0.05), 2))
TARGET = 0.9  # the gate rule's precision target (the product's: a wrong pair undoes what several right ones teach)
CACHE = Path(__file__).resolve().parent.parent / "data" / "bench" / f"seed_reference_cache-{real_samples.split_name()}.pkl"


def _strip_docstrings(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(getattr(first, "value", None), ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def canonical_seed(problem: dict) -> str:
    """The problem's canonical solution as a seed: its prompt's code with docstrings removed."""
    return _strip_docstrings(problem["prompt"] + problem["canonical_solution"])


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def visit_FunctionDef(self, node):
        if node.name == self.old:
            node.name = self.new
        return self.generic_visit(node)

    def visit_Name(self, node):
        if node.id == self.old:
            node.id = self.new
        return node


def other_seed(other: dict, entry: str) -> str:
    """Another problem's solution offered as this task's seed (renamed to its entry point)."""
    tree = _Rename(other["entry_point"], entry).visit(ast.parse(canonical_seed(other)))
    return ast.unparse(tree)


_FLIPS = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}


def mutants(seed: str) -> list[tuple[str, str]]:
    """(kind, program) for every single off-by-one, flipped comparison and dropped branch."""
    out = []
    for index in range(len(list(ast.walk(ast.parse(seed))))):
        for kind in ("off_by_one", "flipped_comparison", "dropped_branch"):
            tree = ast.parse(seed)
            target = list(ast.walk(tree))[index]
            if kind == "off_by_one" and isinstance(target, ast.Constant) and type(target.value) is int:
                target.value += 1
            elif kind == "flipped_comparison" and isinstance(target, ast.Compare) and type(target.ops[0]) in _FLIPS:
                target.ops[0] = _FLIPS[type(target.ops[0])]()
            elif kind == "dropped_branch" and isinstance(target, ast.If):
                target.body = target.orelse or [ast.Pass()]
                target.orelse = []
                target.test = ast.Constant(True)
            else:
                continue
            out.append((kind, ast.unparse(tree)))
    return out


def seeds(problems: list[real_samples.Problem]) -> dict[str, dict]:
    """task_id → {"code", "kind" (canonical | other | mutant kind), "drifted", "correct"}: the fixed, seeded draw."""
    official = {r["task_id"]: r for r in humaneval_problems()}
    rng = np.random.default_rng(DRIFT_SEED)
    ids = [p.task_id for p in problems]
    drifted = set(rng.choice(ids, size=round(DRIFT_SHARE * len(ids)), replace=False).tolist())
    out = {}
    for p in problems:
        ref = official[p.task_id]
        code, kind = canonical_seed(ref), "canonical"
        if p.task_id in drifted:
            options = [(k, m) for k, m in mutants(code)]
            rng.shuffle(options)
            if rng.random() < 0.5 and options:
                for k, m in options[:40]:
                    if not check_programs(ref, [m], OFFICIAL_LIMIT_S)[0]:
                        code, kind = m, k
                        break
            if kind == "canonical":
                other = official[rng.choice([i for i in ids if i != p.task_id])]
                code, kind = other_seed(other, p.entry_point), "other:" + other["task_id"]
        out[p.task_id] = {"code": code, "kind": kind, "drifted": p.task_id in drifted}
    return out


def seed_rows(problems: list[real_samples.Problem], drawn: dict[str, dict]) -> dict[str, dict]:
    """task_id → the seed's reference row (passed, fingerprint per test) and its official verdict; cached by content."""
    cache = pickle.loads(CACHE.read_bytes()) if CACHE.exists() else {}
    key = {p.task_id: hashlib.sha256(pickle.dumps((drawn[p.task_id]["code"], p.tests))).hexdigest() for p in problems}
    todo = [p for p in problems if cache.get(p.task_id, {}).get("key") != key[p.task_id]]
    if todo:
        t = time.perf_counter()
        official = {r["task_id"]: r for r in humaneval_problems()}
        matrices = run_pass_matrices([([drawn[p.task_id]["code"]], p.tests, "") for p in todo])
        for p, m in zip(todo, matrices):
            cache[p.task_id] = {"key": key[p.task_id], "passed": m.passed[0], "fingerprint": m.fingerprint[0],
                                "correct": check_programs(official[p.task_id], [drawn[p.task_id]["code"]], OFFICIAL_LIMIT_S)[0]}  # fmt: skip
        print(f"reference rows of {len(todo)} seeds: {time.perf_counter() - t:.1f} s", flush=True)
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_bytes(pickle.dumps(cache))
    return {p.task_id: cache[p.task_id] for p in problems}


def outcomes(case: Case, r: Ranking, row: dict, knobs: tuple[float, float, float]) -> dict:
    """One problem with the seed (``r``: its seed-free ranking), for one setting of the drift knobs."""
    verdict = reference.judge(
        r,
        row["passed"],
        row["fingerprint"],
        case.inputs,
        case.test_weights,
        min_fidelity=knobs[0],
        min_overlap=knobs[1],
        min_match=knobs[2],
    )
    out = {"verdict": verdict, "pair": None, "right": False, "chosen_ok": False, "features": None}
    if verdict.decides:
        sr = reference.seed_ranking(r, verdict)
        pair = correctness_pair(sr, case.hashes, case.weights, trusted=verdict.trusted)
        out.update(pair=pair, features=reference.features(verdict), chosen_ok=bool(case.correct[sr.chosen]))
        out["right"] = isinstance(pair, Pair) and bool(case.correct[pair.chosen] and not case.correct[pair.rejected])
    return out


def gate(conf: np.ndarray, has: np.ndarray, right: np.ndarray) -> float:
    """The gate rule: the lowest threshold whose kept pairs on the training folds are at least
    TARGET right (the most yield the precision target allows); none reaching it: keep nothing."""
    for t in GATES:
        kept = has & (conf >= t)
        if kept.any() and (right & kept).sum() >= TARGET * kept.sum():
            return float(t)
    return 1.01


def cross_validate(cases: list[Case], free: list[dict], table: dict, draws: int) -> dict:
    """Out-of-fold kept pairs with and without the seed, on the same problems and folds."""
    n = len(cases)
    shape = (draws, n)
    res = {k: np.zeros(shape, dtype=bool) for k in ("kept", "right", "free_kept", "free_right", "caught", "relied", "gated")}
    chosen = []
    free_x = np.array([f["features"] for f in free])
    free_y = np.array([f["chosen_ok"] for f in free], dtype=float)
    free_has = np.array([isinstance(f["pair"], Pair) for f in free])
    free_right = np.array([f["right"] for f in free])
    for d in range(draws):
        perm = np.random.default_rng(d).permutation(n)
        for f in range(FOLDS):
            test, train = perm[f::FOLDS], np.setdiff1d(perm, perm[f::FOLDS])
            coef = calibration.fit(free_x[train], free_y[train])
            free_conf = calibration.predict(free_x, coef) * np.array([x["tie_share"] for x in free])
            free_gate = gate(free_conf[train], free_has[train], free_right[train])
            best = None
            for knobs, rows in table.items():
                fitted = _fit_seed(rows, train, free_conf, free_gate, free_has, free_right)
                if best is None or fitted[0] > best[0]:
                    best = (fitted[0], knobs, fitted[1], fitted[2])
            _, knobs, seed_coef, seed_gate = best
            chosen.append(knobs)
            for i in test:
                res["free_kept"][d, i] = free_has[i] and free_conf[i] >= free_gate
                res["free_right"][d, i] = free_right[i]
                kept, right, relied = _decide(
                    table[knobs][i], seed_coef, seed_gate, free_conf[i], free_gate, free_has[i], free_right[i]
                )
                res["kept"][d, i], res["right"][d, i], res["relied"][d, i] = kept, right, relied
                res["caught"][d, i] = not table[knobs][i]["verdict"].decides
                res["gated"][d, i] = table[knobs][i]["verdict"].decides and not kept
    res["knobs"] = chosen
    return res


def _decide(
    row: dict, coef, seed_gate: float, free_conf: float, free_gate: float, free_has: bool, free_right: bool
) -> tuple[bool, bool, bool]:
    """(pair kept, pair right, pair relies on the seed) for one problem."""
    verdict = row["verdict"]
    if verdict.decides:
        conf = calibration.predict(row["features"], coef)
        kept = isinstance(row["pair"], Pair) and conf >= seed_gate
        return kept, row["right"], kept
    if verdict.status in ("drifted", "no_tests", "not_runnable"):  # the seed-free rule decides
        return bool(free_has and free_conf >= free_gate), free_right, False
    return False, False, False  # conflicting: neither side is trusted


def _fit_seed(rows: list[dict], train: np.ndarray, free_conf, free_gate, free_has, free_right) -> tuple[float, tuple, float]:
    """(the gate rule's score on the training folds, seed coefficients, seed gate) for one knob setting."""
    deciding = [i for i in train if rows[i]["verdict"].decides]
    if len(deciding) < 5:
        return -np.inf, reference.COEFFICIENTS, 1.0
    x = np.array([rows[i]["features"] for i in deciding])
    y = np.array([rows[i]["chosen_ok"] for i in deciding], dtype=float)
    coef = calibration.fit(x, y)
    conf = calibration.predict(x, coef)
    has = np.array([isinstance(rows[i]["pair"], Pair) for i in deciding])
    right = np.array([rows[i]["right"] for i in deciding])
    seed_gate = gate(conf, has, right)
    kept_right = [_decide(rows[i], coef, seed_gate, free_conf[i], free_gate, free_has[i], free_right[i])[:2] for i in train]
    kept = sum(k for k, _ in kept_right)
    right_kept = sum(k and ok for k, ok in kept_right)
    return (kept if right_kept >= TARGET * kept else -np.inf), coef, seed_gate  # the most pairs at the target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    parser.add_argument("--draws", type=int, default=20, help="random fold assignments of the cross-validation")
    args = parser.parse_args()
    cases = load_cases(args.limit)
    problems = [c.problem for c in cases]
    drawn = seeds(problems)
    rows = seed_rows(problems, drawn)
    n, split = len(cases), real_samples.split_name()
    drifted = np.array([drawn[c.problem.task_id]["drifted"] for c in cases])
    print(f"{split}: {n} problems; seeds: {n - drifted.sum()} canonical, {drifted.sum()} drifted "
          f"({', '.join(f'{k} {v}' for k, v in _kinds(drawn).items())}); seeds right by the official tests: "
          f"{sum(rows[c.problem.task_id]['correct'] for c in cases)}; {args.draws} draws of {FOLDS}-fold CV\n")  # fmt: skip
    free = [c.outcome(DEFAULT_RANKER) for c in cases]
    table = {
        k: [outcomes(c, f["ranking"], rows[c.problem.task_id], k) for c, f in zip(cases, free)]
        for k in itertools.product(FIDELITIES, OVERLAPS, MATCHES)
    }
    cv = cross_validate(cases, free, table, args.draws)
    _statuses(table, cv, drifted, free)
    prec, yld, pci, yci = pair_stats(cv["kept"], cv["right"])
    rows0 = table[max(set(cv["knobs"]), key=cv["knobs"].count)]
    ceiling = [r for r in rows0 if r["verdict"].decides and isinstance(r["pair"], Pair)]
    print(f"\nin sample, before any gate: a deciding seed and a pair on {len(ceiling)} problems ({100 * len(ceiling) / n:.0f} %: "
          f"the most yield the seed's side can give at this sample budget), {sum(r['right'] for r in ceiling)} of them right")  # fmt: skip
    fprec, fyld, fpci, fyci = pair_stats(cv["free_kept"], cv["free_right"])
    caught = cv["caught"][:, drifted].mean(axis=0)
    relied_drifted = int((cv["relied"][:, drifted]).sum())
    print(
        f"\nwithout the seed ({DEFAULT_RANKER}, its confidence refitted and gated in each training fold): pairs {_pct(fprec, fpci)} right at yield {_pct(fyld, fyci)}"
    )
    print(f"with the seed: pairs {_pct(prec, pci)} right at yield {_pct(yld, yci)}; knobs chosen (min_fidelity, min_overlap, min_match): "
          + ", ".join(f"{k} ×{cv['knobs'].count(k)}" for k in dict.fromkeys(cv["knobs"])))  # fmt: skip
    flagged = {s: sum(table[k][i]["verdict"].status == s for k in cv["knobs"] for i in np.flatnonzero(drifted)) / len(cv["knobs"])
               for s in reference.STATUSES}  # fmt: skip
    print("drifted seeds, mean over the folds' knobs: " + ", ".join(f"{s} {v:.1f}" for s, v in flagged.items() if v)
          + f"; kept pairs relying on a drifted seed: {relied_drifted / args.draws:.1f} per draw")  # fmt: skip
    _shipped(free, table)
    _adversarial(cases, rows, drifted)
    print(
        f"seed-reference[{split}]: precision {100 * prec:.0f} % [{100 * pci[0]:.0f}–{100 * pci[1]:.0f}] at yield {100 * yld:.0f} %; "
        f"without the seed {100 * fprec:.0f} % [{100 * fpci[0]:.0f}–{100 * fpci[1]:.0f}] at yield {100 * fyld:.0f} %; "
        f"drifted caught {round(caught.sum())} of {drifted.sum()}"
    )


def _shipped(free: list[dict], table: dict) -> None:
    """The values the product ships, fitted on every problem by the rules used inside each training fold."""
    everything = np.arange(len(free))
    x, y = np.array([f["features"] for f in free]), np.array([f["chosen_ok"] for f in free], dtype=float)
    free_conf = calibration.predict(x, calibration.fit(x, y)) * np.array([f["tie_share"] for f in free])
    free_has = np.array([isinstance(f["pair"], Pair) for f in free])
    free_right = np.array([f["right"] for f in free])
    free_gate = gate(free_conf, free_has, free_right)
    fits = {k: _fit_seed(rows, everything, free_conf, free_gate, free_has, free_right) for k, rows in table.items()}
    knobs = max(fits, key=lambda k: fits[k][0])
    _, coef, seed_gate = fits[knobs]
    print(f"shipped (all problems, the training rules): min_fidelity {knobs[0]:g}, min_overlap {knobs[1]:g}, min_match {knobs[2]:g}; "
          f"coefficients {tuple(round(c, 3) for c in coef)} [product {reference.COEFFICIENTS}], gate {seed_gate:g} "
          f"[product {reference.MIN_CONFIDENCE:g}]")  # fmt: skip


def _adversarial(cases: list[Case], rows: dict[str, dict], drifted: np.ndarray) -> None:
    """The rigged-comparison program (an object whose comparisons all say yes) written by 50 samples
    in every problem, ranked with the seed at the shipped knobs: how often it is chosen, and pairs
    choosing it, for right and for drifted seeds."""
    rigged_rows = run_pass_matrices([([RIGGED.format(entry=c.problem.entry_point)], c.problem.tests, "") for c in cases])
    counts = {False: [0, 0, 0], True: [0, 0, 0]}  # drifted → [problems, chosen, pairs choosing it]
    for c, rigged, is_drifted in zip(cases, rigged_rows, drifted):
        weights, rigged_index = np.append(c.weights, RIGGED_SAMPLES), len(c.weights)
        r = rank_candidates(np.vstack([c.passed, rigged.passed]), DEFAULT_RANKER, code_weights=weights, test_weights=c.test_weights,
                            fingerprints=np.vstack([c.fingerprint, rigged.fingerprint]), inputs=c.inputs, verified=c.verified)  # fmt: skip
        row = rows[c.problem.task_id]
        verdict = reference.judge(r, row["passed"], row["fingerprint"], c.inputs, c.test_weights)
        hashes = [*c.hashes, "rigged"]
        if verdict.decides:
            chosen = reference.seed_ranking(r, verdict)
            pair, gate_at = correctness_pair(chosen, hashes, weights, trusted=verdict.trusted), reference.MIN_CONFIDENCE
        else:
            chosen = r
            pair = correctness_pair(r, hashes, weights) if c.passed.shape[1] and verdict.status != "conflicting" else None
            gate_at = DEFAULT_MIN_CONFIDENCE
        tally = counts[bool(is_drifted)]
        tally[0] += 1
        tally[1] += chosen.chosen == rigged_index
        tally[2] += isinstance(pair, Pair) and chosen.confidence >= gate_at and pair.chosen == rigged_index
    print(
        f"\nadversarial: a rigged-comparison program x{RIGGED_SAMPLES} samples added to each problem, the seed at the shipped knobs:\n"
    )
    print("| seeds | problems | it is the chosen code | pairs choosing it |\n|---|---|---|---|")
    for label, key in (("right (canonical)", False), ("drifted", True)):
        print(f"| {label} | {counts[key][0]} | {counts[key][1]} | {counts[key][2]} |")


def _kinds(drawn: dict[str, dict]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for d in drawn.values():
        if d["drifted"]:
            k = d["kind"].split(":")[0]
            kinds[k] = kinds.get(k, 0) + 1
    return kinds


def _statuses(table: dict, cv: dict, drifted: np.ndarray, free: list[dict]) -> None:
    """Per seed status (at the knobs chosen most often): problems, canonical vs drifted, and whether
    the seed-free choice was right there."""
    knobs = max(set(cv["knobs"]), key=cv["knobs"].count)
    rows = table[knobs]
    free_ok = np.array([f["chosen_ok"] for f in free])
    print(
        f"seed statuses at min_fidelity {knobs[0]:g}, min_overlap {knobs[1]:g}, min_match {knobs[2]:g} (chosen in {cv['knobs'].count(knobs)} of {len(cv['knobs'])} folds):\n"
    )
    print("| status | canonical seeds | drifted seeds | seed-free choice right | seed's choice right |\n|---|---|---|---|---|")
    for status in reference.STATUSES:
        idx = [i for i, r in enumerate(rows) if r["verdict"].status == status]
        if not idx:
            continue
        print(f"| {status} | {sum(not drifted[i] for i in idx)} | {sum(drifted[i] for i in idx)} | {sum(free_ok[i] for i in idx)} | "
              f"{sum(rows[i]['chosen_ok'] for i in idx) if status in ('agrees', 'overrules') else '–'} |")  # fmt: skip


if __name__ == "__main__":
    main()
