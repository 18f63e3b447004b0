"""Test extraction on real model output: how many test-generation samples yield a kept test.

Run: .venv/bin/python benchmarks/test_extraction_bench.py
(with ``PYTHONPATH=<another checkout>`` it measures that checkout's parser, for before/after).

Data: ``../shared/data/real-samples/`` (CodeGen-Mono-16B, 100 test-generation samples for each of
82 HumanEval problems, each the completion of a final ``assert ``). Reports the share of samples
with at least one kept test, distinct kept tests per problem, and why the rest were dropped.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_samples

from codedpo_assets.generation import parsing
from codedpo_assets.generation.parsing import dedupe, extract_tests


def main() -> None:
    if not real_samples.available():
        raise SystemExit(f"real samples not found in {real_samples.DATA} (set CODEDPO_REAL_SAMPLES)")
    with gzip.open(real_samples._file(), "rt") as fh:
        rows = [json.loads(line) for line in fh]
    samples = yielding = 0
    distinct, reasons = [], Counter()
    t = time.perf_counter()
    for row in rows:
        items = []
        for i, sample in enumerate(row["test_samples"]):
            found = extract_tests("assert " + sample, row["entry_point"], i)
            samples += 1
            yielding += any(p.kept for p in found)
            items.extend(found)
        items = dedupe(items)
        distinct.append(sum(p.kept for p in items))
        reasons.update(p.reason for p in items if not p.kept)
    took = time.perf_counter() - t
    print(f"parser: {parsing.__file__}")
    print(
        f"{samples} test samples of {len(rows)} problems: {yielding} ({100 * yielding / samples:.1f} %) yield >= 1 kept test; "
        f"distinct kept tests per problem: mean {sum(distinct) / len(distinct):.1f}, median {sorted(distinct)[len(distinct) // 2]}, "
        f"problems with none: {sum(d == 0 for d in distinct)}; {took:.1f} s"
    )
    print(f"drops: {dict(reasons.most_common())}")


if __name__ == "__main__":
    main()
