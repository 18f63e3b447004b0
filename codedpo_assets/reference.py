"""The seed as a reference: its behaviour on the generated tests judges the candidates and the tests.

Every task is written from a seed, real code that already does what the task asks, unless the
model's task drifted from it. Agreement among a model's own samples cannot tell a popular wrong
behaviour from a right one (issue 20's ceiling); the seed can. It runs as one more row of the
pass matrix (``is_reference``), and :func:`judge` compares it with the candidates' behaviour
clusters and the verified tests:

- **fidelity**: the weighted share of the verified tests the seed passes, among those on whose
  input it returns a value (an input it rejects is outside its domain: no evidence either way);
- **match**: the clusters that return the seed's value on every input where the seed returns one;
- **overlap**: per cluster, the share of those inputs on which it returns the seed's value.

A seed that returns no value on any input, or that passes too few tests while no cluster comes
near it, is **drifted**: the task is not the seed's (or its tests are not), the seed-free rule
decides, and nothing is trusted or distrusted because of the seed. A seed that no cluster matches
but that sits near one (the same value on at least ``min_overlap`` of the inputs) or passes the
tests is **conflicting**: the seed says every candidate is wrong, or the task drifted just a little;
neither side is trusted and the task yields no correctness pair. Otherwise the seed's cluster is
the chosen one (``agrees`` when the seed-free ranker chose it too, ``overrules`` when the seed
lifts a less written behaviour), the trusted tests are the ones the seed passes, and the
confidence that gates the pair comes from features of that agreement (:data:`COEFFICIENTS`). Knobs and coefficients are chosen by
cross-validation on real samples (``benchmarks/seed_reference_bench.py``, docs/benchmarks.md).
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from codedpo_assets import calibration
from codedpo_assets.behaviour import distinct_inputs
from codedpo_assets.scoring import Ranking, agreement

STATUSES = ("agrees", "overrules", "conflicting", "drifted", "no_tests", "not_runnable")
# Shipped: chosen on the embedded model's own samples of the even HumanEval problems by the rules of
# benchmarks/seed_reference_bench.py (fitted on all 82; the figures reported are out of fold).
MIN_FIDELITY = 0.3  # below: a seed no cluster matches has drifted (passes too few of the task's tests)
MIN_MATCH = 1.0  # a cluster behaves like the seed: it returns the seed's value on at least this share of its inputs
MIN_OVERLAP = 0.5  # at or above: a seed no cluster matches is close to one: conflicting, not drifted
# (intercept, agrees with the seed-free choice, log mass of the seed's cluster, log fidelity, support): P(chosen correct)
COEFFICIENTS: tuple[float, ...] = (3.015, 1.897, 0.145, 0.736, 2.301)
MIN_CONFIDENCE = 0.0  # the gate rule (the lowest threshold keeping pairs ≥ 90 % right) picks 0 on both splits


@dataclass(frozen=True)
class SeedVerdict:
    """What one task's seed says of its candidates and tests."""

    status: str  # one of STATUSES
    reason: str  # why, in words a reader of the summary understands
    fidelity: float  # weighted share of the judgeable verified tests the seed passes (nan: none judgeable)
    judged: float  # share of the verified tests on whose input the seed returns a value
    match_mass: float  # share of the code samples in clusters behaving like the seed
    overlap: float  # the best cluster's share of inputs where it returns the seed's value
    cluster: int  # the seed's cluster (agrees / overrules), else -1
    trusted: np.ndarray  # [tests of the matrix] verified tests the seed passes (all False unless it decides)
    support: float = 0.0  # overrules: the seed's test share minus the seed-free choice's (< 0: the tests side with the samples)

    @property
    def decides(self) -> bool:
        """The seed picks the chosen code and the trusted tests."""
        return self.status in ("agrees", "overrules")


def _unjudged(status: str, reason: str, n_tests: int) -> SeedVerdict:
    """A verdict without figures: the seed gave nothing to compare."""
    return SeedVerdict(status, reason, float("nan"), 0.0, 0.0, 0.0, -1, np.zeros(n_tests, dtype=bool))


def not_runnable(reason: str, n_tests: int) -> SeedVerdict:
    """A seed that cannot run on its own (no entry point, does not compile, needs its module)."""
    return _unjudged("not_runnable", reason, n_tests)


_CONTEXT_ERRORS = ("!error:NameError", "!error:ImportError", "!error:ModuleNotFoundError", "!error:UnboundLocalError")


def runnable(code: str, entry_point: str) -> str | None:
    """Why a seed cannot run on its own as its task's reference (None: it can): it must compile
    and define the task's entry point at its top level."""
    try:
        tree = ast.parse(code)
    except SyntaxError as error:
        return f"does not compile: {error.msg} (line {error.lineno})"
    if not any(isinstance(node, ast.FunctionDef) and node.name == entry_point for node in tree.body):
        return f"defines no function {entry_point!r} at its top level"
    return None


def _is_value(prints: np.ndarray) -> np.ndarray:
    return np.array([str(f)[:1] in ("=", "#") for f in prints], dtype=bool)


def judge(
    ranking: Ranking,
    seed_passed: Sequence[bool] | np.ndarray,
    seed_prints: Sequence[str] | np.ndarray,
    inputs: Sequence[str] | None = None,
    test_weights: Sequence[float] | np.ndarray | None = None,
    *,
    min_fidelity: float = MIN_FIDELITY,
    min_overlap: float = MIN_OVERLAP,
    min_match: float = MIN_MATCH,
) -> SeedVerdict:
    """The seed's verdict on one ranked task. ``seed_passed`` / ``seed_prints``: the reference
    row of the pass matrix (one entry per test of the matrix, as ``ranking.counted``); ``inputs``:
    what each test runs the code on (tests sharing an input share a column, as in the clusters)."""
    counted = np.flatnonzero(ranking.counted)
    m = len(ranking.counted)
    passed, prints = np.asarray(seed_passed, dtype=bool), np.asarray(seed_prints, dtype=object)
    if passed.shape != (m,) or prints.shape != (m,):
        raise ValueError(f"one reference verdict and fingerprint per test expected ({m}), got {passed.shape}, {prints.shape}")
    weights = np.ones(m) if test_weights is None else np.asarray(test_weights, dtype=np.float64)
    valued = _is_value(prints)
    on = counted[valued[counted]]  # verified tests whose input the seed answers
    nothing = np.zeros(m, dtype=bool)
    if not len(counted):
        return _unjudged("no_tests", "no verified test to run the seed on", m)
    if not len(on):
        errors = Counter(str(f) for f in prints[counted])
        context = sum(n for f, n in errors.items() if f.startswith(_CONTEXT_ERRORS))
        if context == len(counted):  # every call stopped at a name its module would have given it
            return not_runnable(f"needs its module's context: {errors.most_common(1)[0][0][1:]} on every input", m)
        return _unjudged("drifted", "the seed returns no value on any test input", m)
    fidelity = float(agreement(passed[on][None], weights[on])[0])
    judged = float(weights[on].sum() / weights[counted].sum())
    clusters = ranking.clusters
    columns = distinct_inputs(None if inputs is None else [inputs[int(j)] for j in counted], len(counted))
    seed_out = prints[counted][columns]
    mask = _is_value(seed_out)
    same = clusters.outputs[:, mask] == seed_out[mask][None, :] if clusters.size else np.zeros((0, int(mask.sum())), dtype=bool)
    overlap = same.mean(axis=1) if same.shape[1] else np.zeros(clusters.size)
    matches = np.flatnonzero(overlap >= min_match - 1e-12)
    mass = clusters.mass()
    match_mass, best = float(mass[matches].sum()), float(overlap.max(initial=0.0))
    trusted = nothing.copy()
    trusted[on] = passed[on]
    figures = (fidelity, judged, match_mass, best)
    if not len(matches):
        if fidelity < min_fidelity and best < min_overlap:
            return SeedVerdict(
                "drifted", f"the seed passes {fidelity:.0%} of the tests and no behaviour comes near it", *figures, -1, nothing
            )
        return SeedVerdict(
            "conflicting", f"no candidate behaves like the seed (closest: {best:.0%} of inputs)", *figures, -1, nothing
        )
    cluster = int(max(matches, key=lambda k: (clusters.samples[k], -k)))
    if cluster == ranking.top_cluster:
        return SeedVerdict("agrees", "the seed behaves like the chosen code", *figures, cluster, trusted)
    top = float(agreement(clusters.passed[ranking.top_cluster][None], weights[counted])[0])
    return SeedVerdict("overrules", "the seed lifts a less written behaviour", *figures, cluster, trusted, fidelity - top)


def features(verdict: SeedVerdict) -> np.ndarray:
    """The confidence model's inputs for a deciding seed."""
    return np.array([float(verdict.status == "agrees"), np.log(max(verdict.match_mass, 1e-12)),
                     np.log(verdict.fidelity + calibration.AGREEMENT_FLOOR), verdict.support])  # fmt: skip


def confidence(verdict: SeedVerdict, coefficients: Sequence[float] = COEFFICIENTS) -> float:
    """P(the seed's cluster is correct), for a deciding seed; 0 otherwise."""
    return float(calibration.predict(features(verdict), coefficients)) if verdict.decides else 0.0


def seed_ranking(ranking: Ranking, verdict: SeedVerdict, coefficients: Sequence[float] = COEFFICIENTS) -> Ranking:
    """The ranking as the seed decides it: its cluster scored above every other, its best-scored
    code chosen (consensus: the most written), the confidence from the seed's features. A seed that does not decide leaves the
    seed-free ranking as it is."""
    if not verdict.decides:
        return ranking
    clusters = ranking.clusters
    members = clusters.members(verdict.cluster)
    scores = np.asarray(ranking.scores, dtype=np.float64).copy()
    scores[members] = scores.max(initial=0.0) + 1.0 + scores[members]  # ahead of all; the order inside kept
    chosen = int(members[np.argmax(scores[members])])
    return replace(ranking, method=f"{ranking.method}+seed", scores=scores, chosen=chosen, confidence=confidence(verdict, coefficients),
                   agreement=verdict.fidelity, tie_share=1.0)  # fmt: skip
