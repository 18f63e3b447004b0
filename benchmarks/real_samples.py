"""Real model samples (``../shared/data/real-samples``) as the pipeline sees them.

Each problem becomes the candidate programs and test statements the project's own parser keeps
from 100 solution and 100 test-generation samples, deduplicated as the pipeline does, plus the
official HumanEval check for ground truth. Benchmarks only: the product never needs this data.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from codedpo_assets.decontam import humaneval_path
from codedpo_assets.generation.parsing import dedupe, extract_program, extract_tests

# A folder holding FILE, or one split's file itself (e.g. benchmarks/embedded_samples.py's output).
DATA = Path(os.environ.get("CODEDPO_REAL_SAMPLES", Path(__file__).resolve().parents[2] / "shared/data/real-samples"))
FILE = "humaneval-codegen16b-dev.jsonl.gz"


def _file() -> Path:
    return DATA if DATA.is_file() else DATA / FILE


@dataclass
class Problem:
    task_id: str
    entry_point: str
    codes: list[str]  # distinct kept programs
    tests: list[str]  # distinct kept test statements
    official: str  # HumanEval's check(...) program (ground truth, never shown to rankers)
    code_counts: list[int] = field(default_factory=list)  # samples behind each program (multiplicity)
    test_counts: list[int] = field(default_factory=list)  # samples behind each test
    samples: int = 100  # solution samples drawn (the raw baseline's denominator)


def split_name() -> str:
    """The split's file name without its suffixes: what its figures and caches are labelled with."""
    return _file().name.removesuffix(".gz").removesuffix(".jsonl")


def available() -> bool:
    return _file().exists()


def _official() -> dict[str, dict]:
    with gzip.open(humaneval_path(), "rt") as fh:
        return {p["task_id"]: p for p in map(json.loads, fh)}


def load(limit: int | None = None) -> list[Problem]:
    """The problems, in file order (``limit``: the first n only)."""
    official = _official()
    problems = []
    with gzip.open(_file(), "rt") as fh:
        for line in fh:
            row = json.loads(line)
            entry = row["entry_point"]
            programs = [extract_program(row["solution_prompt"] + s, entry, i) for i, s in enumerate(row["solution_samples"])]
            tests = [t for i, s in enumerate(row["test_samples"]) for t in extract_tests("assert " + s, entry, i)]
            ref = official[row["task_id"]]
            codes, kept_tests = [p for p in dedupe(programs) if p.kept], [t for t in dedupe(tests) if t.kept]
            problems.append(
                Problem(
                    row["task_id"],
                    entry,
                    [p.text for p in codes],
                    [t.text for t in kept_tests],
                    ref["test"] + f"\ncheck({entry})\n",
                    [p.multiplicity for p in codes],
                    [t.multiplicity for t in kept_tests],
                    len(row["solution_samples"]),
                )
            )
            if limit and len(problems) >= limit:
                break
    return problems
