"""Pass-matrix stage: every kept candidate against every kept test of its prompt, in the sandbox."""

from collections import Counter

import dagster as dg
from pydantic import Field

from codedpo_assets.assets.generation import ASSET_ARGS, candidate_code, generated_tests
from codedpo_assets.assets.metadata import code_version, frame_table, numbers, preview, previews, table_metadata, whole_asset
from codedpo_assets.assets.ranking import REFERENCE_PREFIX
from codedpo_assets.assets.resources import DuckDBStore
from codedpo_assets.plots import status_heatmap
from codedpo_assets.reference import runnable
from codedpo_assets.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIME_LIMIT_S, Calibration, run_pass_matrices


class PassMatrixConfig(dg.Config):
    time_limit_s: float = Field(
        default=DEFAULT_TIME_LIMIT_S, description="CPU seconds per test (every thread and child process counts): the ceiling."
    )
    memory_mb: int = Field(
        default=DEFAULT_MEMORY_MB, description="Memory limit of a candidate's whole run (cgroup) and of each of its processes."
    )
    calibrate: bool = Field(
        default=True,
        description="Per-test limits learned from the prompt's other candidates; false: every cell gets time_limit_s.",
    )
    probe_s: float = Field(default=Calibration.probe_s, description="Calibration: every cell's first-pass CPU limit.")
    calibration_factor: float = Field(
        default=Calibration.factor,
        description="Calibration: a test's limit is this × the most CPU a candidate needed to finish it.",
    )
    max_consecutive_timeouts: int = Field(
        default=Calibration.max_consecutive_timeouts,
        description="Calibration: a candidate stops after this many timeouts in a row.",
    )

    def calibration(self) -> Calibration | None:
        if not self.calibrate:
            return None
        return Calibration(
            probe_s=self.probe_s, factor=self.calibration_factor, max_consecutive_timeouts=self.max_consecutive_timeouts
        )


def _kept(db, table: str, column: str, id_col: str, key: str) -> dict[str, list[tuple[str, str]]]:
    rows = db.query(
        f"SELECT prompt_id, {id_col}, {column} FROM {table} WHERE partition_key = ? AND reason IS NULL ORDER BY prompt_id, sample_index, {id_col}",
        [key],
    ).rows()
    out: dict[str, list[tuple[str, str]]] = {}
    for prompt_id, item_id, text in rows:
        out.setdefault(prompt_id, []).append((item_id, text))
    return out


def seed_imports(db, key: str) -> dict[str, str]:
    """prompt_id → the seed's import lines: the shared prelude of its candidates and tests
    (a task inherits its seed's environment; models often use a module without importing it)."""
    rows = db.query("SELECT p.prompt_id, s.imports FROM prompts p JOIN seeds s ON s.seed_id = p.seed_id AND s.partition_key = p.partition_key "
                    "WHERE p.partition_key = ?", [key]).rows()  # fmt: skip
    return {prompt_id: "\n".join(imports or []) for prompt_id, imports in rows}


def references(db, key: str) -> dict[str, tuple[str, str]]:
    """prompt_id → (its reference row's code id, the seed's code) for every task whose seed can run
    on its own as its reference (:func:`codedpo_assets.reference.runnable`; the others are recorded
    not_runnable by seed_reference)."""
    rows = db.query("SELECT p.prompt_id, s.seed_id, s.code, p.entry_point FROM prompts p JOIN seeds s USING (partition_key, seed_id) "
                    "WHERE p.partition_key = ?", [key]).rows()  # fmt: skip
    return {
        prompt_id: (REFERENCE_PREFIX + seed_id, code) for prompt_id, seed_id, code, entry in rows if runnable(code, entry) is None
    }


HEATMAP_PICK = """
    SELECT g.prompt_id, count(DISTINCT g.cells) AS patterns, count(*) AS codes,
           EXISTS (SELECT 1 FROM preference_pairs p WHERE p.prompt_id = g.prompt_id AND p.kind = 'correctness') AS paired
    FROM pass_matrix_grid g WHERE NOT g.is_reference GROUP BY g.prompt_id ORDER BY paired DESC, patterns DESC, codes DESC, g.prompt_id LIMIT 1"""


def _pictures(db) -> dict:
    """Heatmap of one prompt of the whole asset — one whose matrix gave a correctness pair, else the
    most informative (most distinct verdict rows) — with why it was picked, and beside it that
    prompt's codes with their row of verdicts (no cells anywhere: nothing)."""
    picked = db.query(HEATMAP_PICK).rows()
    if not picked:
        return {}
    prompt, patterns, n_codes, paired = picked[0]
    cells = db.query(
        "SELECT code_index, test_index, status FROM pass_matrix WHERE prompt_id = ? AND NOT coalesce(is_reference, false)",
        [prompt],
    ).rows()
    grid = [["" for _ in range(max(c[1] for c in cells) + 1)] for _ in range(max(c[0] for c in cells) + 1)]
    for i, j, status in cells:
        grid[i][j] = status
    partition, entry = db.query("SELECT partition_key, entry_point FROM prompts WHERE prompt_id = ?", [prompt]).row(0)
    why = ("its matrix gave a correctness pair" if paired else
           f"no prompt has a correctness pair yet; this matrix is the most informative: {patterns} distinct verdict rows over {n_codes} codes")  # fmt: skip
    title = f"Pass matrix of prompt {prompt[:8]} ({entry}, {partition}): {len(grid)} codes x {len(grid[0])} tests"
    codes = ("SELECT g.code_index AS code, g.cells AS \"verdicts (P pass, F fail, E error, T timeout, C crash)\", g.tests_passed, c.code AS program "
             "FROM pass_matrix_grid g JOIN candidate_code c USING (code_id) WHERE g.prompt_id = ? ORDER BY g.code_index")  # fmt: skip
    return {"pass_matrix_heatmap": dg.MetadataValue.md(status_heatmap(grid, title)),
            "heatmap_prompt": dg.MetadataValue.text(f"{prompt} ({entry}, partition {partition}): {why}"),
            "heatmap_codes": preview(db, codes, [prompt], limit=20)}  # fmt: skip


SUMMARY = ("SELECT partition_key, prompt_id, codes, tests, cells_passed, cells, pass_rate, timeouts, crashes FROM pass_matrix_summary "
           "WHERE {partition} ORDER BY pass_rate DESC, partition_key, prompt_id")  # fmt: skip


CELLS_BY_STATUS = """SELECT status, count(*) AS cells, round(count(*) / sum(count(*)) OVER (), 3) AS share
    FROM pass_matrix WHERE NOT coalesce(is_reference, false) GROUP BY status ORDER BY cells DESC, status"""


@dg.asset(
    deps=[candidate_code, generated_tests],
    description="One row per (prompt, code, test) cell: status, CPU time and a fingerprint of what the code returned, from the sandbox (see docs/sandbox.md); "
    "the task's seed runs with its candidates as the reference row (is_reference).",
    code_version=code_version(__name__, "codedpo_assets.sandbox", "codedpo_assets.reference"),
    metadata=table_metadata("pass_matrix"),
    **{**ASSET_ARGS, "group_name": "verification"},
)
def pass_matrix(context: dg.AssetExecutionContext, config: PassMatrixConfig, store: DuckDBStore) -> dg.MaterializeResult:
    db, key = store.get(), context.partition_key
    codes, tests = _kept(db, "candidate_code", "code", "code_id", key), _kept(db, "generated_tests", "test", "test_id", key)
    rows, isolation, setup, seeds = [], {}, seed_imports(db, key), references(db, key)
    schedule: Counter[str] = Counter()
    prompts = sorted(codes.keys() & tests.keys())
    runs = [codes[p] + ([seeds[p]] if p in seeds else []) for p in prompts]  # the seed runs last, as one more candidate
    matrices = run_pass_matrices([([c for _, c in run], [t for _, t in tests[p]], setup.get(p, "")) for p, run in zip(prompts, runs)],
                                 time_limit_s=config.time_limit_s, memory_mb=config.memory_mb, calibration=config.calibration())  # fmt: skip
    for prompt_id, run, matrix in zip(prompts, runs, matrices):
        isolation = matrix.isolation
        schedule.update(
            {k: v for k, v in matrix.schedule.items() if k in ("cells_rerun", "cells_not_run", "tests_at_full_limit")}
        )
        for i, (code_id, _) in enumerate(run):
            is_reference = i == len(codes[prompt_id])
            for j, (test_id, _) in enumerate(tests[prompt_id]):
                rows.append({"partition_key": key, "prompt_id": prompt_id, "code_id": code_id, "test_id": test_id,
                             "code_index": -1 if is_reference else i, "test_index": j, "status": str(matrix.status[i, j]),
                             "passed": bool(matrix.passed[i, j]), "verified": bool(matrix.verified[j]),
                             "cpu_time_ns": int(matrix.cpu_time_ns[i, j]), "detail": str(matrix.detail[i, j])[:500],
                             "fingerprint": str(matrix.fingerprint[i, j]),
                             "limit_ms": float(matrix.limit_ns[i, j]) / 1e6 or None, "is_reference": is_reference})  # fmt: skip
    db.replace_partition(key, {"pass_matrix": rows})
    statuses = Counter(r["status"] for r in rows if not r["is_reference"])
    candidate_cells = sum(statuses.values())
    return dg.MaterializeResult(
        metadata={
            **_pictures(db),
            **whole_asset(db, "pass_matrix", key, len(rows)),
            "reference_rows": len({r["prompt_id"] for r in rows if r["is_reference"]}),
            **previews(db, SUMMARY, key),
            "prompts": len(codes.keys() & tests.keys()),
            **numbers({"pass_rate": statuses["pass"] / candidate_cells if candidate_cells else 0.0}),
            "cells_by_status": dg.MetadataValue.json(dict(sorted(statuses.items()))),
            # the whole matrix beside this partition's (which may be empty)
            "all_partitions_cells_by_status": frame_table(db.query(CELLS_BY_STATUS)),
            "isolation": dg.MetadataValue.json(isolation),
            "calibration": dg.MetadataValue.json(dict(schedule)),
        }
    )
