"""benchmarks/loop_gain.py: its paired statistics on known answers, the contract of its last line,
the checks that keep HumanEval and the held-out pairs out of training, and resume (a second run
of the loop profile builds nothing)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FakeServer, module_with_function, write

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import loop_gain

from codedpo_assets.decontam import humaneval_problems

LAST_LINE = re.compile(
    r"^loop-gain: pairs \d+ \(correctness \d+, efficiency \d+\); pass@1 base \d+\.\d trained \d+\.\d change [+-]\d+\.\d "
    r"\[[+-]\d+\.\d, [+-]\d+\.\d\]; heldout_pref base \d+\.\d trained \d+\.\d change [+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\]; "
    r"base_model \S+; checkpoint \S+$"
)


def test_mcnemar_is_the_exact_binomial_over_discordant_items():
    before = [0] * 10 + [1] * 2 + [1] * 30 + [0] * 58  # 10 only-trained, 2 only-base, the rest concordant
    after = [1] * 10 + [0] * 2 + [1] * 30 + [0] * 58
    up, down, p = loop_gain.mcnemar(before, after)
    assert (up, down) == (10, 2) and p == pytest.approx(2 * (1 + 12 + 66) / 2**12)  # 0.0386
    assert loop_gain.mcnemar([1, 0, 1], [1, 0, 1])[2] == 1.0  # nothing moved


def test_paired_change_has_its_interval_around_it():
    before, after = [0] * 40 + [1] * 60, [0] * 30 + [1] * 70  # 10 items up, none down
    result = loop_gain.paired(before, after)
    assert result["change"] == pytest.approx(0.1) and result["low"] < 0.1 < result["high"] and result["low"] > 0
    assert (result["up"], result["down"], result["n"]) == (10, 0, 100)


def test_last_line_keeps_its_form():
    pass1 = loop_gain.paired([0, 1, 1, 0], [1, 1, 1, 0])
    pref = loop_gain.paired([0, 0, 1], [0, 1, 1])
    line = loop_gain.last_line({"total": 61, "correctness": 55, "efficiency": 6}, pass1, pref, "/m/base", "/m/dpo-1")
    assert LAST_LINE.match(line), line
    assert "pairs 61 (correctness 55, efficiency 6)" in line and "pass@1 base 50.0 trained 75.0 change +25.0" in line


def test_humaneval_in_a_training_pair_is_counted():
    problem = humaneval_problems()[0]
    leaked = {
        "prompt": problem["prompt"],
        "chosen": problem["prompt"] + problem["canonical_solution"],
        "rejected": "def f():\n    return 1\n",
    }
    clean = {
        "prompt": "Return the larger of two numbers.",
        "chosen": "def bigger(a, b):\n    return max(a, b)\n",
        "rejected": "def bigger(a, b):\n    return a\n",
    }
    assert loop_gain.contaminated([leaked, clean]) == 1 and loop_gain.contaminated([clean]) == 0


def test_a_heldout_program_in_training_stops_the_benchmark():
    loop_gain.disjoint({"a", "b"}, {"c"}, "HumanEval/0")
    with pytest.raises(SystemExit, match="HumanEval/0"):
        loop_gain.disjoint({"a", "b"}, {"b"}, "HumanEval/0")


def test_modules_are_chosen_until_the_tasks_are_there():
    modules = loop_gain.choose_modules(12, 4)
    assert modules == sorted(modules) and modules == loop_gain.choose_modules(12, 4)  # name order, the same each time
    assert len(modules) >= 3


def test_the_loop_profile_resumes(tmp_path, tree):
    """Two runs of the loop profile on a scripted server: the second builds nothing."""
    for i in range(2):
        write(tree, f"m{i}.py", module_with_function(i))
    server = FakeServer()
    (tmp_path / "sources.json").write_text(f'[{{"name": "local", "kind": "directory", "path": "{tree}"}}]')
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(home), "CODEDPO_DB": str(tmp_path / "db.duckdb"),
           "CODEDPO_SOURCES": str(tmp_path / "sources.json"), "CODEDPO_GENERATOR": "openai",
           "CODEDPO_OPENAI_BASE_URL": server.url, "CODEDPO_OPENAI_MODEL": "fake"}  # fmt: skip

    def run() -> str:
        done = subprocess.run([sys.executable, "-m", "codedpo_assets.cli", "run", "--profile", "loop", "--skip-training"], cwd=tmp_path,
                              env=env, capture_output=True, check=False, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    first = run()
    assert "materializing 2" in first and "build_pairs_loop x" in first and "the loop profile's max_seeds = 4" in first
    calls = server.calls
    assert "materializing 0" in run() and server.calls == calls
    server.close()
