"""Generation: parsing rules, OpenAI-compatible backend against a real local HTTP server, cache,
and the seeds → prompts → candidate_code / generated_tests → pass_matrix chain in Dagster."""

import json

import dagster as dg
import numpy as np
import pytest
from conftest import FakeServer

from codedpo_assets import calibration, reference
from codedpo_assets.assets import build_definitions
from codedpo_assets.assets.generation import Generator, Sampling, SamplingConfig, candidate_code, generated_tests, prompts
from codedpo_assets.assets.pass_matrix import pass_matrix
from codedpo_assets.assets.preferences import (
    pairs_are_sound,
    preference_pairs,
    preference_pairs_export,
    timings,
    trusted_tests,
    verification_scores,
)
from codedpo_assets.assets.ranking import Ranking
from codedpo_assets.assets.resources import SeedSource, SeedSources
from codedpo_assets.assets.seed_reference import seed_reference
from codedpo_assets.assets.seeds import seed_sources, seeds
from codedpo_assets.generation.backends import GenerationError, GenerationParams, OpenAIBackend, Request
from codedpo_assets.generation.parsing import dedupe, extract_program, extract_tests
from codedpo_assets.generation.tasks import task_statement
from codedpo_assets.pairs import DEFAULT_MIN_CONFIDENCE
from codedpo_assets.scoring import DEFAULT_RANKER

SEED = "def add(a, b):\n    total = a\n    total += b\n    return total\n"


def test_extract_program_handles_fences_prose_guards_and_truncation():
    out = "Sure!\n```python\nimport math\n\ndef add(a, b):\n    return a + b\n\nprint(add(1, 2))\nif __name__ == '__main__':\n    add(1, 2)\n```\nDone."
    parsed = extract_program(out, "add", 0)
    assert parsed.kept and "print" not in parsed.text and "__main__" not in parsed.text and "import math" in parsed.text
    truncated = "def add(a, b):\n    return a + b\n\ndef helper(x):\n    return [x,"
    assert extract_program(truncated, "add", 1).kept
    assert extract_program("I think you should add the numbers.", "add", 2).reason in ("no_code", "no_entry_point")
    assert extract_program("", "add", 3).reason == "empty_output"
    assert extract_program("```python\ndef other(a):\n    return a\n```", "add", 4).reason == "no_entry_point"
    assert extract_program("x" * 30000, "add", 5).reason == "output_too_long"


def test_extract_program_drops_what_the_model_ran_on_into():
    """Real samples run on past the function into the model's next file (seen in CodeGen-16B's
    HumanEval samples: a trailing `from django... import` made a correct program error on every test)."""
    out = (
        "import re\n\ndef add(a, b):\n    return _plus(a, b) + OFFSET\n\nfrom django.contrib import admin\nfrom core import models\n\n"
        "OFFSET = 0\n\ndef _plus(a, b):\n    return a + b\n\ndef add(a, b):\n    return 'shadowed'\n\nclass Admin(admin.ModelAdmin):\n    pass\n"
    )
    text = extract_program(out, "add", 0).text
    assert "django" not in text and "core" not in text and "Admin" not in text and "shadowed" not in text
    assert "import re" in text and "OFFSET = 0" in text and "def _plus" in text  # before the def, or used by it
    namespace: dict = {}
    exec(text, namespace)
    assert namespace["add"](2, 3) == 5


def test_tests_are_split_filtered_and_deduplicated():
    out = "```python\nassert add(1, 2) == 3\nassert add(1,2)==3\nassert 1 == 1\nassert add(2, 2) == add(2, 2)\nassert add(0, 0) == 0\n```"
    items = dedupe(extract_tests(out, "add", 0))
    assert [(i.text, i.reason) for i in items] == [
        ("assert add(1, 2) == 3", ""),
        ("assert add(1, 2) == 3", "duplicate"),
        ("assert 1 == 1", "no_entry_point_call"),
        ("assert add(2, 2) == add(2, 2)", "trivial"),
        ("assert add(0, 0) == 0", ""),
    ]
    assert extract_tests("no tests here", "add", 1)[0].reason == "no_assert"


def test_tests_are_read_from_real_model_output():
    """Shapes seen in real test-generation samples (CodeGen-16B completing a final `assert `)."""
    cases = {
        "bare assert, expression on the next line, message": (
            "assert \n    add(1, 2) == 3, 'small'\nassert \n    add(0, 0) == 0\n",
            ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
        ),
        "bare comparisons under a bare assert": (
            "assert \n    add(1, 1) == 2\n    add(2, 3) == 5\n",
            ["assert add(1, 1) == 2", "assert add(2, 3) == 5"],
        ),
        "prose first, tests after": ("assert  check the correctness of add\nassert add(4, 4) == 8\n", ["assert add(4, 4) == 8"]),
        "truncated: complete statements kept": (
            "assert add(1, 2) == 3\nassert add(5, [\n    1, 2\n]) == 4\nassert add(9, ",
            ["assert add(1, 2) == 3", "assert add(5, [1, 2]) == 4"],
        ),
        "pytest functions, truncated body": (
            "def test_add():\n    assert add(1, 2) == 3\n    assert add(2, 2) == 4\n    assert add(3,",
            ["assert add(1, 2) == 3", "assert add(2, 2) == 4"],
        ),
        "unittest methods": (
            "class T(unittest.TestCase):\n    def test_a(self):\n        self.assertEqual(add(1, 2), 3)\n        self.assertTrue(add(1, 1))\n"
            "        self.assertIsNone(add(None, 0))\n",
            ["assert add(1, 2) == 3", "assert add(1, 1)", "assert add(None, 0) is None"],
        ),
        "loop over literal cases": (
            "for a, b, want in [(1, 2, 3), (2, 2, 4)]:\n    assert add(a, b) == want\n",
            ["assert add(1, 2) == 3", "assert add(2, 2) == 4"],
        ),
        "loop over computed cases: nothing to unroll": ("for a in range(3):\n    assert add(a, a) == 2 * a\n", []),
    }
    for name, (sample, expected) in cases.items():
        kept = [p.text for p in extract_tests(sample, "add", 0) if p.kept]
        assert kept == expected, (name, kept)
    assert extract_tests("assert \n\n", "add", 1)[0].reason == "no_assert"  # every sample ends somewhere
    assert extract_tests("assert ____ == ____\n", "add", 2)[0].reason == "no_entry_point_call"


def test_renamed_candidates_are_duplicates():
    a = extract_program("def add(a, b):\n    s = a + b\n    return s\n", "add", 0)
    b = extract_program("def add(x, y):\n    total = x + y\n    return total\n", "add", 1)
    assert [(p.reason, p.multiplicity) for p in dedupe([a, b])] == [("", 2), ("duplicate", 0)]
    tests = dedupe(
        extract_tests("assert add(1, 2) == 3\nassert add(1,2) == 3\n", "add", 0)
        + extract_tests("assert add(1, 2) == 3", "add", 1)
    )
    assert [t.multiplicity for t in tests] == [2, 0, 0]  # two samples wrote it (one of them twice)


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


def test_openai_backend_retries_then_succeeds_and_names_url_when_unreachable():
    flaky = FakeServer(fail_first=2)
    try:
        backend = OpenAIBackend(flaky.url, "m", retries=3)
        seen = []
        out = backend.generate([Request([{"role": "user", "content": "programming problem"}], 1)], GenerationParams(),
                               progress=lambda done, tokens: seen.append((done, tokens)))  # fmt: skip
        assert out == ["Return the sum of two integers a and b."] and flaky.calls == 3
        assert seen == [(1, 9)]  # progress: items done and the server-reported token count
    finally:
        flaky.close()
    dead = OpenAIBackend("http://127.0.0.1:9/v1", "m", retries=1, timeout_s=2)
    with pytest.raises(GenerationError, match=r"127\.0\.0\.1:9/v1/chat/completions unreachable after 2 attempts"):
        dead.generate([Request([{"role": "user", "content": "x"}], 1)], GenerationParams())


def test_openai_backend_keeps_a_real_servers_worth_of_requests_in_flight():
    """The default concurrency fills a GPU server's batch: every slot busy at once, replies in request order."""
    from codedpo_assets.assets.generation import Generator

    concurrency = Generator().concurrency
    assert concurrency >= 64
    slow = FakeServer(delay_s=0.5)
    try:
        backend = OpenAIBackend(slow.url, "m", concurrency=concurrency)
        prompts = ["programming problem", "test cases"] * concurrency
        done = []
        out = backend.generate([Request([{"role": "user", "content": p}], i) for i, p in enumerate(prompts)], GenerationParams(),
                               progress=lambda n, _: done.append(n))  # fmt: skip
        assert slow.max_in_flight == concurrency and slow.calls == len(prompts)
        assert out == [slow.answer(p) for p in prompts] and done == list(range(1, len(prompts) + 1))
    finally:
        slow.close()


def test_seed_to_pass_matrix_chain_with_cache(server, tree, tmp_path, store_resource):
    """One partition end to end, on both store backends (DuckDB file; DuckLake on PostgreSQL)."""
    (tree / "calc.py").write_text(SEED)
    defs = build_definitions(
        store_resource,
        SeedSources(sources=[SeedSource(name="local", kind="directory", path=str(tree))]),
        Generator(backend="openai", base_url=server.url, model="fake"),
    )
    chain = [seed_sources, seeds, prompts, candidate_code, generated_tests, pass_matrix, seed_reference, verification_scores, trusted_tests,
             timings, preference_pairs]  # fmt: skip
    config = dg.RunConfig(
        {name: {"config": {"n_samples": 4, "temperature": 0.8}} for name in ("prompts", "candidate_code", "generated_tests")}
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("seeds", ["local:calc.py"])

        def run():
            result = dg.materialize(chain, selection=chain[1:], partition_key="local:calc.py", instance=instance,
                                    resources=defs.resources, run_config=config)  # fmt: skip
            assert result.success

        run()
        first_calls = server.calls
        meta = {k: instance.get_latest_materialization_event(dg.AssetKey(k)).asset_materialization.metadata
                for k in ("pass_matrix", "verification_scores", "preference_pairs")}  # fmt: skip
        heatmap_prompt = db_prompt = defs.resources["store"].get().query("SELECT prompt_id FROM prompts").item()
        assert (
            f"Pass matrix of prompt {heatmap_prompt[:8]} (add, local:calc.py)" in meta["pass_matrix"]["pass_matrix_heatmap"].value
        )  # the title names its prompt
        assert meta["pass_matrix"]["heatmap_prompt"].value.startswith(db_prompt)
        shown = [
            r.data for r in meta["pass_matrix"]["heatmap_codes"].value.records
        ]  # beside it: that prompt's codes, whole, with their verdicts
        assert [r["code"] for r in shown] == [0, 1] and any(r["program"].startswith("def add(a, b):\n") for r in shown)
        # 2 codes x 3 tests, and the seed's reference row (its pass rate is not the candidates')
        assert meta["pass_matrix"]["partition_rows"].value == 9 and meta["pass_matrix"]["pass_rate"].value == round(4 / 6, 4)
        assert meta["pass_matrix"]["reference_rows"].value == 1
        assert "data:image/png;base64," in meta["verification_scores"]["score_histogram"].value
        pairs = [r.data for r in meta["preference_pairs"]["preview"].value.records]
        inline = [(r.data["what"], r.data["rows"]) for r in meta["preference_pairs"]["pairs_and_skips"].value.records]
        assert sorted(inline) == [
            ("correctness pairs", 1),
            ("no efficiency pair: fewer_than_two_correct_timed", 1),
        ]  # shown on the page, no click
        assert (
            meta["preference_pairs"]["correctness_pairs"].value == 1
            and "return a + b" in pairs[0]["chosen"]
            and "a - b" in pairs[0]["rejected"]
        )
        schema = defs.resolve_assets_def("pass_matrix").specs_by_key[dg.AssetKey("pass_matrix")].metadata["dagster/column_schema"]
        assert {"status", "cpu_time_ns", "limit_ms"} <= {c.name for c in schema.columns}
        assert first_calls == 1 + 4 + 4  # one task, N candidates, M test samples
        db = defs.resources["store"].get()
        assert db.query("SELECT count(*) FROM prompts WHERE reason IS NULL").item() == 1
        codes = db.query("SELECT code, reason FROM candidate_code ORDER BY sample_index").rows()
        assert len(codes) == 4 and {r for _, r in codes} <= {None, "duplicate"}
        kept = [c for c, r in codes if r is None]
        assert len(kept) == len(set(kept)) == 2  # the server alternates a right and a wrong program
        assert db.query("SELECT multiplicity FROM candidate_code WHERE reason IS NULL").to_series().to_list() == [2, 2]
        tests = db.query("SELECT test, verified, reason FROM generated_tests WHERE reason IS NULL").rows()
        assert len(tests) == 3 and all(v for _, v, _ in tests)
        grid = db.query("SELECT cells FROM pass_matrix_grid WHERE NOT is_reference ORDER BY code_index").to_series().to_list()
        assert [sorted(g) for g in grid] == [
            list("PPP") if "a + b" in c else list("FFP") for c in kept
        ]  # a - b passes only add(0, 0) == 0
        # two candidates and the seed (it runs with them) finish every test: their CPU calibrates the limits
        assert [limit for (limit,) in db.query("SELECT DISTINCT limit_ms FROM pass_matrix").rows()] < [2000.0]
        assert (
            meta["pass_matrix"]["isolation"].value["cpu_accounting"]
            and "cells_not_run" in meta["pass_matrix"]["calibration"].value
        )
        (pair,) = db.query(
            "SELECT kind, chosen, rejected, margin, trusted_test_ids, confidence, min_confidence, seed_status FROM preference_pairs"
        ).rows()
        # the seed (total = a; total += b) behaves like a + b on every test and passes them all: it agrees, and its
        # confidence model gates the pair (half the code samples behave like it)
        (verdict,) = db.query("SELECT status, fidelity, match_mass, decides, confidence FROM seed_reference").rows()
        conf = reference.confidence(reference.SeedVerdict("agrees", "", 1.0, 1.0, 0.5, 1.0, 0, np.ones(3, dtype=bool)))
        assert verdict == ("agrees", 1.0, 0.5, True, pytest.approx(conf))
        assert pair[5:] == (pytest.approx(conf), reference.MIN_CONFIDENCE, "agrees")
        assert pair[0] == "correctness" and "a + b" in pair[1] and "a - b" in pair[2] and pair[3] > 0 and len(pair[4]) == 3
        skipped = db.query("SELECT kind, reason FROM preference_pairs_skipped").rows()
        assert skipped == [("efficiency", "fewer_than_two_correct_timed")]
        assert db.query("SELECT count(*) FROM timings WHERE all_passed").item() == 1
        export = dg.materialize([*chain, preference_pairs_export, pairs_are_sound], selection=[preference_pairs_export, pairs_are_sound],
                                instance=instance, resources=defs.resources,
                                run_config={"ops": {"preference_pairs_export": {"config": {"directory": str(tmp_path / "export")}}}})  # fmt: skip
        assert export.success and all(e.passed for e in export.get_asset_check_evaluations())
        from datasets import load_dataset

        ds = load_dataset("parquet", data_files=str(tmp_path / "export" / "preference_pairs.parquet"))["train"]
        assert ds.num_rows == 1 and {"prompt", "chosen", "rejected", "kind"} <= set(ds.column_names)
        card = (tmp_path / "export" / "README.md").read_text()
        assert (
            f"| correctness | {DEFAULT_RANKER} | 1 |" in card
            and f"selection: ranker {DEFAULT_RANKER}, confidence >= {reference.MIN_CONFIDENCE}" in card
        )
        manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
        assert (
            manifest["selection"] == [{"ranker": DEFAULT_RANKER, "min_confidence": reference.MIN_CONFIDENCE}]
            and "behaviour cluster" in manifest["confidence_filter"]
        )
        assert ds[0]["confidence"] == pytest.approx(conf) and (ds[0]["chosen_cluster"], ds[0]["rejected_cluster"]) in (
            (0, 1),
            (1, 0),
        )
        clusters = db.query("SELECT cluster, programs, samples, tests_passed FROM behaviour_clusters ORDER BY cluster").rows()
        assert sorted(c[1:] for c in clusters) == [
            (1, 2, 1),
            (1, 2, 3),
        ]  # the view: one cluster per program here, with its samples
        # without the seed, the seed-free confidence: half the code samples behave like the chosen code, which passes every test
        conf = calibration.predict(calibration.features(0.5, 1.0), calibration.COEFFICIENTS[DEFAULT_RANKER])
        free = dg.materialize(chain, selection=[timings, preference_pairs], partition_key="local:calc.py", instance=instance,
                              resources={**defs.resources, "ranking": Ranking(use_seed=False)})  # fmt: skip
        assert free.success and conf > DEFAULT_MIN_CONFIDENCE
        assert db.query("SELECT confidence, min_confidence, seed_status FROM preference_pairs").rows() == [
            (pytest.approx(conf), DEFAULT_MIN_CONFIDENCE, None)
        ]
        # a stricter confidence filter: the prompt yields no pair, with the reason
        strict = dg.materialize(chain, selection=[timings, preference_pairs], partition_key="local:calc.py", instance=instance,
                                resources={**defs.resources, "ranking": Ranking(min_confidence=0.9, use_seed=False)})  # fmt: skip
        assert strict.success and db.query("SELECT count(*) FROM preference_pairs").item() == 0
        assert db.query("SELECT count(*) FROM timings").item() == 0  # nothing timed for a prompt below the filter
        assert db.query("SELECT DISTINCT reason, round(confidence, 6) FROM preference_pairs_skipped").rows() == [
            ("low_confidence", round(conf, 6))
        ]
        # another model's confidence fit, by config: the same prompt's pair carries that fit's probability
        other = Ranking(min_confidence=0.0, confidence_fit="codegen-mono-16b", use_seed=False)
        refit = dg.materialize(chain, selection=[timings, preference_pairs], partition_key="local:calc.py", instance=instance,
                               resources={**defs.resources, "ranking": other})  # fmt: skip
        expected = calibration.predict(calibration.features(0.5, 1.0), calibration.FITS["codegen-mono-16b"][DEFAULT_RANKER])
        assert expected != pytest.approx(conf)
        assert refit.success and db.query("SELECT confidence FROM preference_pairs").item() == pytest.approx(expected)
        assert (
            other.threshold() == 0.0
            and Ranking(confidence_fit="codegen-mono-16b").threshold() == calibration.THRESHOLDS["codegen-mono-16b"]
        )
        assert (
            Ranking().threshold() == DEFAULT_MIN_CONFIDENCE != calibration.THRESHOLDS["codegen-mono-16b"]
        )  # the threshold goes with its fit
        with pytest.raises(dg.Failure, match="confidence_fit"):
            Ranking(confidence_fit="gpt-2").checked()
        # lineage by snapshot: the export recorded the DuckLake snapshot it read; time travel still finds that pair
        if db.backend == "ducklake":
            assert db.query(f"SELECT count(*) FROM preference_pairs AT (VERSION => {manifest['store_snapshot']})").item() == 1
        else:
            assert manifest["store_snapshot"] is None
        run()  # unchanged partition: everything comes from the generation cache
        assert server.calls == first_calls


def test_transformers_backend_batches_and_is_deterministic(tiny_model_dir):
    from codedpo_assets.generation.backends import TransformersBackend

    backend = TransformersBackend(tiny_model_dir, batch_size=3)
    requests = [Request([{"role": "user", "content": f"Write a Python function {i}."}], seed=7) for i in range(5)]
    params = GenerationParams(temperature=1.0, max_new_tokens=12)
    first = backend.generate(requests, params)
    assert len(first) == 5 and all(isinstance(t, str) for t in first)
    assert backend.generate(requests, params) == first  # same config on CPU -> same outputs
    assert backend.identity.startswith(tiny_model_dir.name + "@")


def test_missing_model_path_is_a_clear_error(tmp_path, monkeypatch):
    from codedpo_assets.generation.backends import TransformersBackend

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(GenerationError, match="does not exist"):
        TransformersBackend(tmp_path / "nope")


ISLEAP = """Here is a Python function that implements the logic described:
```python
def isleap(year):
    \"\"\"Check if a year is leap year.\"\"\"
    return (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) or year % 100)
```
Given a year as an integer, return True when it is a leap year in the Gregorian calendar and False otherwise."""


def test_task_statements_lose_the_code_they_leak():
    """The report: the isleap prompt carried a wrong implementation of isleap."""
    statement, cut, reason = task_statement(ISLEAP)
    assert "def " not in statement and "year % 4" not in statement and cut == "code defining isleap" and reason is None
    assert statement.endswith("False otherwise.")
    bare = "def area(w, h):\n    return w * h\n\nSo the area is the product."  # unfenced code, little statement left
    statement, cut, reason = task_statement(bare)
    assert statement == "So the area is the product." and cut == "code defining area" and reason == "solution_in_prompt"
    unterminated = (
        "Compute the mean of a list of numbers and return it as a float value.\n```python\ndef mean(xs):\n    return sum(xs)"
    )
    assert task_statement(unterminated)[0] == "Compute the mean of a list of numbers and return it as a float value."
    usage = "Return the sum of two integers given as arguments, as an integer.\n```python\n>>> add(1, 2)\n3\n```"
    assert task_statement(usage) == (usage, None, None)  # an example call is a statement, not a solution


def test_sampling_fields_left_empty_take_the_runs_profile():
    """A quick job's launchpad showed the paper's numbers: empty fields now mean "the run's profile"."""
    assert SamplingConfig().resolved("quick") == Sampling(0.8, 1.0, 160, 3, 4)
    assert SamplingConfig().resolved("paper") == Sampling(1.5, 1.0, 512, 0, 15)
    assert SamplingConfig(n_samples=7).resolved("quick").n_samples == 7  # a value given wins
    with pytest.raises(dg.Failure, match="profile='fast'"):
        SamplingConfig().resolved("fast")
    quick = build_definitions().resolve_job_def("build_pairs_quick")
    assert quick.run_tags["profile"] == "quick"
    described = SamplingConfig.model_fields["max_new_tokens"].description
    assert "paper 512, quick 160" in described  # every profile's value where the field is described
