"""Behaviour clusters: programs that did the same thing on every test input form one cluster.

The sandbox brings back, per cell, a fingerprint of what the code did on that test's input (its
returned value, canonical, or its outcome when there is no value: ``!error:KeyError``,
``!timeout``...). Programs with identical fingerprint vectors are one behaviour, written by the
samples behind its programs (multiplicity). SRank (arXiv 2311.03366) clusters the same way and
relates clusters by *functional overlap*: the share of inputs on which two clusters return the
same value. Both are here, pure (numpy), for the rankers in :mod:`codedpo_assets.scoring`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Clusters:
    """Behaviour clusters of one prompt, numbered in order of their first code."""

    of_code: np.ndarray  # [codes] cluster index of each code
    samples: np.ndarray  # [clusters] samples behind the cluster's programs (multiplicity)
    programs: np.ndarray  # [clusters] distinct programs in the cluster
    outputs: np.ndarray  # [clusters, inputs] fingerprint on each distinct input (object)
    passed: np.ndarray  # [clusters, tests] tests the cluster passes (the same for every member)

    @property
    def size(self) -> int:
        return len(self.samples)

    def mass(self) -> np.ndarray:
        """Share of the prompt's code samples in each cluster (uniform when no sample counts)."""
        total = self.samples.sum()
        return self.samples / total if total > 0 else np.full(self.size, 1.0 / max(self.size, 1))

    def members(self, cluster: int) -> np.ndarray:
        return np.flatnonzero(self.of_code == cluster)


def distinct_inputs(inputs: Sequence[str] | None, n_tests: int) -> np.ndarray:
    """Column index of the first test of each distinct input (tests evaluating the same call
    expression share an input: their fingerprints agree, so one column stands for them)."""
    if inputs is None:
        return np.arange(n_tests)
    if len(inputs) != n_tests:
        raise ValueError(f"one input per test expected, got {len(inputs)} for {n_tests} tests")
    first: dict[str, int] = {}
    for j, text in enumerate(inputs):
        first.setdefault(text, j)
    return np.array(sorted(first.values()), dtype=np.int64)


def behaviour_clusters(fingerprints: np.ndarray | None, passed: np.ndarray, code_weights: np.ndarray | None = None,
                       inputs: Sequence[str] | None = None) -> Clusters:  # fmt: skip
    """Cluster codes by their fingerprint vector (and verdicts, so members pass the same tests).
    Without fingerprints (None) the passed-test vector is the behaviour: CodeT's consensus sets."""
    passed = np.asarray(passed, dtype=bool)
    n, m = passed.shape
    weights = np.ones(n) if code_weights is None else np.asarray(code_weights, dtype=np.float64)
    prints = np.where(passed, "!pass", "!fail").astype(object) if fingerprints is None else np.asarray(fingerprints, dtype=object)
    if prints.shape != (n, m):
        raise ValueError(f"one fingerprint per cell expected: shape {(n, m)}, got {prints.shape}")
    columns = distinct_inputs(inputs, m)
    index: dict[tuple, int] = {}
    of_code = np.array([index.setdefault((tuple(prints[i]), passed[i].tobytes()), len(index)) for i in range(n)], dtype=np.int64)
    k = len(index)
    firsts = np.unique(of_code, return_index=True)[1]  # clusters are numbered in order of their first code
    return Clusters(of_code, np.bincount(of_code, weights=weights, minlength=k), np.bincount(of_code, minlength=k).astype(np.float64),
                    prints[firsts][:, columns] if k else np.zeros((0, len(columns)), dtype=object), passed[firsts])  # fmt: skip


def functional_overlap(clusters: Clusters) -> np.ndarray:
    """[clusters, clusters]: share of distinct inputs on which both clusters returned the same
    value (an error, timeout or bare verdict is no agreement: SRank counts only outputs); 1 on
    the diagonal. No inputs: the identity (clusters are unrelated)."""
    outputs = clusters.outputs
    k, n_inputs = outputs.shape
    overlap = np.eye(k)
    if k == 0 or n_inputs == 0:
        return overlap
    codes = np.empty((k, n_inputs), dtype=np.int64)
    for j in range(n_inputs):
        codes[:, j] = np.unique(outputs[:, j], return_inverse=True)[1].ravel()
    is_value = np.vectorize(lambda f: f[:1] in ("=", "#"), otypes=[bool])(outputs)
    same = (codes[:, None, :] == codes[None, :, :]) & is_value[:, None, :] & is_value[None, :, :]
    overlap = same.mean(axis=2)
    np.fill_diagonal(overlap, 1.0)
    return overlap
