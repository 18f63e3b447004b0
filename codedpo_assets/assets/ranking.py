"""The ranking every scoring asset shares: a prompt's stored pass matrix → its chosen code, trusted
tests and confidence, judged by its seed where the seed can judge (:mod:`codedpo_assets.reference`).

Recomputed from the stored matrix by each asset that needs it (cheap, deterministic), so scores,
trusted tests, timings and pairs never disagree about which code was chosen."""

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import dagster as dg
import numpy as np
from pydantic import Field

from codedpo_assets import calibration, reference
from codedpo_assets.pairs import trusted_tests as trusted_mask
from codedpo_assets.reference import SeedVerdict
from codedpo_assets.sandbox.verdicts import parse_test
from codedpo_assets.scoring import DEFAULT_RANKER, MASS_EXPONENT, RANKERS, rank_candidates
from codedpo_assets.scoring import Ranking as Ranked

REFERENCE_PREFIX = "seed:"  # code_id of a pass_matrix reference row: seed:<seed_id>


class Ranking(dg.ConfigurableResource):
    """Which ranker picks trusted tests and pairs (an ablation run is a change here), its knobs,
    whether the seed judges, and the confidence a prompt needs to yield pairs."""

    ranker: str = Field(default=DEFAULT_RANKER, description=f"One of {RANKERS}; 'behaviour' ranks clusters of identical outputs (SRank's form), "
                                                            "'self_verification' is the paper's formula.")  # fmt: skip
    mass_exponent: float = Field(default=MASS_EXPONENT, gt=0.0, description="behaviour: a cluster is worth (its share of the code samples) ** this "
                                                                            "× (its share of the tests passed); chosen by cross-validation on real samples.")  # fmt: skip
    damping: float = Field(default=0.85, description="Damping d of the consensus and self_verification iterations.")
    iterations: int = Field(default=10, description="Iterations of the consensus and self_verification rankers.")
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0,
                                         description="A prompt yields pairs only when the calibrated probability that its chosen code is correct is "
                                                     "at least this; 0 keeps every prompt. Empty: the confidence fit's own threshold, chosen by "
                                                     f"cross-validation with it ({calibration.THRESHOLDS}), or seed_min_confidence where the seed decides.")  # fmt: skip
    confidence_fit: str = Field(default=calibration.DEFAULT_FIT,
                                description=f"Whose samples the confidence model was fitted on, one of {sorted(calibration.FITS)}: the "
                                            "embedded model's own by default; pick the one nearest your model, or refit with calibration.fit.")  # fmt: skip
    use_seed: bool = Field(default=True, description="The seed (its pass_matrix reference row) judges its task: where it decides, the candidates behaving like it "
                                                     "are chosen and the tests it passes are trusted; where it drifted or cannot run, the seed-free rule decides; "
                                                     "where it conflicts with every candidate, the task yields no pair. false: the seed-free rule everywhere "
                                                     "(the seed's verdict is still recorded in seed_reference).")  # fmt: skip
    seed_min_fidelity: float = Field(default=reference.MIN_FIDELITY, ge=0.0, le=1.0,
                                     description="A seed no candidate behaves like has drifted when it passes less than this share of the verified tests.")  # fmt: skip
    seed_min_overlap: float = Field(default=reference.MIN_OVERLAP, ge=0.0, le=1.0,
                                    description="… unless a candidate returns the seed's value on at least this share of the inputs: then it conflicts.")  # fmt: skip
    seed_min_match: float = Field(default=reference.MIN_MATCH, ge=0.0, le=1.0,
                                  description="A candidate behaves like the seed when it returns the seed's value on at least this share of the inputs.")  # fmt: skip
    seed_min_confidence: float = Field(default=reference.MIN_CONFIDENCE, ge=0.0, le=1.0,
                                       description="The confidence threshold where the seed decides (the seed's own confidence model; "
                                                   "benchmarks/seed_reference_bench.py chose it by cross-validation).")  # fmt: skip

    def checked(self) -> str:
        if self.ranker not in RANKERS:
            raise dg.Failure(f"ranking.ranker: {self.ranker!r} is not one of {RANKERS}")
        if self.confidence_fit not in calibration.FITS:
            raise dg.Failure(f"ranking.confidence_fit: {self.confidence_fit!r} is not one of {sorted(calibration.FITS)}")
        return self.ranker

    def knobs(self, ranker: str) -> dict[str, Any]:
        coefficients = {"coefficients": calibration.FITS[self.confidence_fit][ranker]}
        if ranker in ("consensus", "self_verification"):
            return {"damping": self.damping, "iterations": self.iterations, **coefficients}
        return {"mass_exponent": self.mass_exponent, **coefficients} if ranker == "behaviour" else coefficients

    def threshold(self, seeded: bool = False) -> float:
        """The confidence a prompt needs: the one set, else the one chosen with the confidence model in use."""
        if self.min_confidence is not None:
            return self.min_confidence
        return self.seed_min_confidence if seeded else calibration.THRESHOLDS[self.confidence_fit]


@dataclass(frozen=True)
class Matrix:
    """One prompt's stored pass matrix, as ``rank_candidates`` takes it, with its seed's reference row."""

    codes: list[str]  # code ids, by code index
    tests: list[str]  # test ids, by test index
    passed: np.ndarray
    fingerprint: np.ndarray
    inputs: list[str]  # what each test runs the code on
    code_weights: np.ndarray  # samples behind each code / test (multiplicity)
    test_weights: np.ndarray
    verified: np.ndarray  # per test: judged outside the candidate's process (only these count)
    reference_passed: np.ndarray  # the seed's row (all False, and reference_prints all '', when it did not run)
    reference_prints: np.ndarray

    def rank(self, ranking: Ranking, ranker: str, prompt_id: str) -> Ranked:
        return rank_candidates(self, ranker, code_weights=self.code_weights, test_weights=self.test_weights, seed=int(prompt_id[:8], 16),
                               **ranking.knobs(ranker))  # fmt: skip

    @property
    def has_reference(self) -> bool:
        return bool((self.reference_prints != "").any())


MATRIX_CELLS = """
    SELECT m.prompt_id, m.code_index, m.test_index, m.code_id, m.test_id, m.passed, coalesce(m.fingerprint, '!' || m.status),
           coalesce(c.multiplicity, 1), coalesce(t.multiplicity, 1), t.test, m.verified, coalesce(m.is_reference, false)
    FROM pass_matrix m LEFT JOIN candidate_code c USING (partition_key, code_id) LEFT JOIN generated_tests t USING (partition_key, test_id)
    WHERE m.partition_key = ? ORDER BY ALL"""


def _matrix(cells: list[tuple], inputs: dict[str, str]) -> Matrix:
    candidates = [c for c in cells if not c[11]]
    n, m = max(c[1] for c in candidates) + 1, max(c[2] for c in cells) + 1
    matrix = Matrix([""] * n, [""] * m, np.zeros((n, m), dtype=bool), np.full((n, m), "!error", dtype=object), [""] * m, np.ones(n), np.ones(m),
                    np.zeros(m, dtype=bool), np.zeros(m, dtype=bool), np.full(m, "", dtype=object))  # fmt: skip
    for _, i, j, code_id, test_id, ok, fingerprint, cw, tw, _, verified, is_reference in cells:
        matrix.tests[j], matrix.test_weights[j], matrix.inputs[j], matrix.verified[j] = test_id, tw, inputs[test_id], verified
        if is_reference:
            matrix.reference_passed[j], matrix.reference_prints[j] = ok, fingerprint
        else:
            matrix.codes[i], matrix.passed[i, j], matrix.fingerprint[i, j], matrix.code_weights[i] = code_id, ok, fingerprint, cw
    return matrix


def matrices(db, key: str) -> dict[str, Matrix]:
    """prompt_id → its pass matrix (verdicts, fingerprints, test inputs, the seed's row) with the
    multiplicity its codes and tests were kept with."""
    grouped: dict[str, list[tuple]] = {}
    inputs: dict[str, str] = {}  # test id → what it runs the code on: parsed once per test, not per cell
    for row in db.query(MATRIX_CELLS, [key]).rows():
        grouped.setdefault(row[0], []).append(row)
        if row[4] not in inputs:
            inputs[row[4]] = parse_test(row[9] or "").src
    return {prompt_id: _matrix(cells, inputs) for prompt_id, cells in grouped.items() if any(not c[11] for c in cells)}


@dataclass(frozen=True)
class Decision:
    """One prompt's ranking as the pairs use it: the seed's where it decides, else the seed-free one."""

    matrix: Matrix
    free: Ranked  # the seed-free ranking of the configured ranker
    seed: SeedVerdict  # what the seed says (recorded whether or not it is used)
    use_seed: bool

    @property
    def seeded(self) -> bool:
        """The seed chose the code and the trusted tests."""
        return self.use_seed and self.seed.decides

    @cached_property
    def ranked(self) -> Ranked:
        return reference.seed_ranking(self.free, self.seed) if self.seeded else self.free

    @property
    def blocked(self) -> str | None:
        """Why the prompt yields no pair whatever its ranking says: the seed conflicts with every candidate."""
        return "seed_conflicting" if self.use_seed and self.seed.status == "conflicting" else None

    def trusted(self) -> np.ndarray:
        """Per test of the matrix: trusted (the seed's passed tests where it decides; none where it conflicts)."""
        if self.blocked:
            return np.zeros(len(self.matrix.tests), dtype=bool)
        return self.seed.trusted if self.seeded else trusted_mask(self.free)

    @property
    def seed_status(self) -> str | None:
        return self.seed.status if self.use_seed else None


def seed_verdict(ranking: Ranking, matrix: Matrix, free: Ranked, seed_code: str, entry_point: str) -> SeedVerdict:
    """The seed's verdict on one prompt; a seed without a reference row says why it could not run."""
    if not matrix.has_reference:
        why = reference.runnable(seed_code, entry_point) or "it has no reference row in pass_matrix (rematerialize pass_matrix)"
        return reference.not_runnable(why, len(matrix.tests))
    return reference.judge(free, matrix.reference_passed, matrix.reference_prints, matrix.inputs, matrix.test_weights,
                           min_fidelity=ranking.seed_min_fidelity, min_overlap=ranking.seed_min_overlap, min_match=ranking.seed_min_match)  # fmt: skip


def seeds_of(db, key: str) -> dict[str, tuple[str, str]]:
    """prompt_id → (its seed's code, the task's entry point)."""
    rows = db.query(
        "SELECT p.prompt_id, s.code, p.entry_point FROM prompts p JOIN seeds s USING (partition_key, seed_id) WHERE p.partition_key = ?",
        [key],
    ).rows()
    return {prompt_id: (code, entry) for prompt_id, code, entry in rows}


def decisions(db, key: str, ranking: Ranking) -> dict[str, Decision]:
    """prompt_id → its decision by the configured ranker, the seed judging where ``ranking.use_seed``."""
    ranker, seeds = ranking.checked(), seeds_of(db, key)
    out = {}
    for prompt_id, matrix in matrices(db, key).items():
        free = matrix.rank(ranking, ranker, prompt_id)
        verdict = seed_verdict(ranking, matrix, free, *seeds.get(prompt_id, ("", "")))
        out[prompt_id] = Decision(matrix, free, verdict, ranking.use_seed)
    return out
