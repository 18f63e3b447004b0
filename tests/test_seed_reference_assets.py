"""The seed as its task's reference in the product: the pass matrix's reference row, the
seed_reference verdicts, and pairs judged by the seed (a right seed beside a popular wrong
behaviour and a wrong test, a drifted seed, a seed that cannot run, one no candidate behaves like),
through the Dagster assets on a scripted OpenAI-compatible server."""

import dagster as dg
import pytest
from conftest import FakeServer

from codedpo_assets.assets import build_definitions
from codedpo_assets.assets.checks import check_results
from codedpo_assets.assets.generation import Generator, candidate_code, generated_tests, prompts
from codedpo_assets.assets.pass_matrix import pass_matrix
from codedpo_assets.assets.preferences import preference_pairs, timings, trusted_tests, verification_scores
from codedpo_assets.assets.ranking import Ranking
from codedpo_assets.assets.resources import DuckDBStore, SeedSource, SeedSources
from codedpo_assets.assets.seed_reference import seed_reference
from codedpo_assets.assets.seeds import seed_sources, seeds
from codedpo_assets.assets.summary import pipeline_summary
from codedpo_assets.store import named_query

# entry point → (seed, task statement, [(program, samples of 4)], tests): each a case the seed must settle
CASES = {
    # the seed is right, 3 of 4 samples share a wrong behaviour, and one test agrees with them
    "clip": (
        "def clip(x):\n    if x < 0:\n        return 0\n    return x\n",
        [("def clip(x):\n    return abs(x)\n", 3), ("def clip(x):\n    return max(0, x)\n", 1)],
        ["assert clip(-2) == 2", "assert clip(-5) == 0", "assert clip(3) == 3"],
    ),
    # the model's task is not its seed's (the seed scales by 10): the seed-free rule decides
    "scale": (
        "def scale(x):\n    result = x * 10\n    return result\n",
        [("def scale(x):\n    return x * 2\n", 3), ("def scale(x):\n    return x + 2\n", 1)],
        ["assert scale(2) == 4", "assert scale(3) == 6", "assert scale(5) == 10"],
    ),
    # every candidate differs from the seed on one input of three: no side is trusted, no pair
    "bump": (
        "def bump(x):\n    if x > 100:\n        return x\n    return x + 1\n",
        [("def bump(x):\n    return x + 1\n", 3), ("def bump(x):\n    return x - 1\n", 1)],
        ["assert bump(1) == 2", "assert bump(5) == 6", "assert bump(500) == 501"],
    ),
    # its stored code cannot run as the reference (see the test): the seed-free rule decides
    "triple": (
        "def triple(x):\n    out = x * 3\n    return out\n",
        [("def triple(x):\n    return x * 3\n", 3), ("def triple(x):\n    return x + 3\n", 1)],
        ["assert triple(2) == 6", "assert triple(4) == 12", "assert triple(0) == 0"],
    ),
}


class CaseServer(FakeServer):
    """Answers by the entry point the prompt names: a task statement, the case's tests, and its
    programs in the case's proportions (the n-th request for a task gets program n mod 4)."""

    def __init__(self):
        super().__init__()
        self.asked: dict[str, int] = {}

    def answer(self, prompt: str) -> str:
        name = next(n for n in CASES if f"{n}(" in prompt)
        _, programs, tests = CASES[name]
        if "programming problem" in prompt:
            return f"Write a function named {name} that takes one integer x and returns the transformed integer as described."
        if "test cases" in prompt:
            return "```python\n" + "\n".join(tests) + "\n```"
        self.asked[name] = self.asked.get(name, 0) + 1
        expanded = [code for code, n in programs for _ in range(n)]
        return "```python\n" + expanded[self.asked[name] % len(expanded)] + "```"


CHAIN = [seed_sources, seeds, prompts, candidate_code, generated_tests, pass_matrix, seed_reference, verification_scores,
         trusted_tests, timings, preference_pairs]  # fmt: skip
GENERATION = dg.RunConfig(
    {n: {"config": {"n_samples": 4, "temperature": 0.8}} for n in ("prompts", "candidate_code", "generated_tests")}
)


@pytest.fixture
def built(tree, tmp_path):
    for name, (seed, _, _) in CASES.items():
        (tree / f"{name}.py").write_text(seed)
    server = CaseServer()
    store = DuckDBStore(database=str(tmp_path / "codedpo.duckdb"))
    defs = build_definitions(store, SeedSources(sources=[SeedSource(name="local", kind="directory", path=str(tree))]),
                             Generator(backend="openai", base_url=server.url, model="fake"))  # fmt: skip
    instance = dg.DagsterInstance.ephemeral()
    keys = [f"local:{name}.py" for name in CASES]
    instance.add_dynamic_partitions("seeds", keys)
    db = store.get()

    def materialize(selection, key, **resources):
        config = GENERATION if prompts in selection else None
        result = dg.materialize(CHAIN, selection=selection, partition_key=key, instance=instance,
                                resources={**defs.resources, **resources}, run_config=config)  # fmt: skip
        assert result.success

    for key in keys:
        materialize(CHAIN[1:5], key)
    # the triple seed as a source might hand it over: code that does not define its task's function
    with db.transaction() as conn:
        conn.execute("UPDATE seeds SET code = replace(code, 'def triple', 'def tripled') WHERE symbol = 'triple'")
    for key in keys:
        materialize(CHAIN[5:], key)
    yield db, materialize, keys, defs
    server.httpd.shutdown()


def _verdicts(db) -> dict:
    rows = db.query(
        "SELECT s.symbol, r.status, r.decides, r.reason, r.fidelity FROM seed_reference r JOIN seeds s USING (seed_id)"
    ).rows()
    return {symbol: (status, decides, reason, fidelity) for symbol, status, decides, reason, fidelity in rows}


def test_the_seed_settles_each_case(built):
    db, *_ = built
    verdicts = _verdicts(db)
    assert {k: v[:2] for k, v in verdicts.items()} == {"clip": ("overrules", True), "scale": ("drifted", False),
                                                       "bump": ("conflicting", False), "triple": ("not_runnable", False)}  # fmt: skip
    assert "defines no function 'triple'" in verdicts["triple"][2] and verdicts["triple"][3] is None
    assert verdicts["clip"][3] == pytest.approx(2 / 3)  # it fails the test the wrong majority passes
    pairs = {r[0]: r[1:] for r in db.query("SELECT s.symbol, p.chosen, p.rejected, p.seed_status, p.min_confidence FROM preference_pairs p "
                                           "JOIN seeds s USING (seed_id) WHERE p.kind = 'correctness'").rows()}  # fmt: skip
    # the right, less written behaviour is chosen against the popular wrong one
    assert "max(0, x)" in pairs["clip"][0] and "abs(x)" in pairs["clip"][1] and pairs["clip"][2:] == ("overrules", 0.0)
    # drifted and not runnable: the seed-free rule's pair, as without the seed
    assert "x * 2" in pairs["scale"][0] and pairs["scale"][2] == "drifted"
    assert "x * 3" in pairs["triple"][0] and pairs["triple"][2] == "not_runnable"
    assert "bump" not in pairs
    assert db.query("SELECT DISTINCT p.reason FROM preference_pairs_skipped p JOIN prompts USING (prompt_id) "
                    "WHERE entry_point = 'bump'").rows() == [("seed_conflicting",)]  # fmt: skip
    # trusted tests: the seed's passed ones where it decides, so the wrong test is never trusted
    trusted = db.query("SELECT g.test FROM trusted_tests t JOIN generated_tests g USING (test_id) JOIN prompts p ON p.prompt_id = t.prompt_id "
                       "WHERE p.entry_point = 'clip' ORDER BY g.test").to_series().to_list()  # fmt: skip
    assert trusted == ["assert clip(-5) == 0", "assert clip(3) == 3"]
    assert (
        db.query("SELECT count(*) FROM trusted_tests t JOIN prompts p USING (prompt_id) WHERE p.entry_point = 'bump'").item() == 0
    )


def test_reference_rows_stay_out_of_candidate_views_and_show_in_sql(built):
    db, *_ = built
    reference = db.query("SELECT p.entry_point, count(*), min(m.code_index), max(m.code_index), bool_and(m.code_id = 'seed:' || p.seed_id) "
                         "FROM pass_matrix m JOIN prompts p USING (prompt_id) WHERE m.is_reference GROUP BY ALL ORDER BY 1").rows()  # fmt: skip
    assert reference == [(name, 3, -1, -1, True) for name in ("bump", "clip", "scale")]  # one row per test; none for triple
    assert db.query("SELECT max(codes) FROM pass_matrix_summary").item() == 2  # candidates only
    assert db.query("SELECT count(*) FROM pass_matrix_grid WHERE is_reference").item() == 3
    seed_clusters = db.query(
        "SELECT p.entry_point, b.outputs FROM behaviour_clusters b JOIN prompts p USING (prompt_id) WHERE b.is_seed_cluster"
    ).rows()
    assert [name for name, _ in seed_clusters] == ["clip"] and seed_clusters[0][1].count('["i","0"]') == 2
    by_source = db.query("SELECT source, tasks, seed_ran, agrees, overrules, conflicting, drifted, not_runnable, drift_share "
                         "FROM seed_reference_by_source").rows()  # fmt: skip
    assert by_source == [("local", 4, 3, 0, 1, 1, 1, 1, pytest.approx(2 / 3, abs=1e-3))]
    drifted = db.query(named_query("drifted_tasks")).rows()
    assert sorted((r[3], r[4]) for r in drifted) == [("bump", "conflicting"), ("scale", "drifted")]
    assert all("def " in r[8] and "Implement the function" in r[9] for r in drifted)  # seed and prompt side by side


def test_reference_row_survives_partial_rematerialization(built):
    db, materialize, keys, _ = built
    snapshot = (
        "SELECT partition_key, prompt_id, code_id, test_id, status, fingerprint FROM pass_matrix WHERE is_reference ORDER BY ALL"
    )
    before = db.query(snapshot).rows()
    materialize([pass_matrix], keys[0])  # one partition's matrix again: every partition keeps its reference row
    materialize(CHAIN[6:], keys[1])  # the scoring stages alone: the matrix is untouched
    assert db.query(snapshot).rows() == before and before
    assert _verdicts(db)["clip"][:2] == ("overrules", True)


def test_use_seed_false_is_the_seed_free_rule_with_the_verdict_still_recorded(built):
    db, materialize, keys, _ = built
    materialize(CHAIN[6:], keys[0], ranking=Ranking(use_seed=False, min_confidence=0.0))
    chosen = db.query(
        "SELECT chosen, seed_status FROM preference_pairs WHERE partition_key = ? AND kind = 'correctness'", [keys[0]]
    ).rows()
    assert (
        len(chosen) == 1 and "abs(x)" in chosen[0][0] and chosen[0][1] is None
    )  # the popular wrong behaviour wins without the seed
    assert _verdicts(db)["clip"][:2] == ("overrules", False)


def test_summary_and_checks_see_the_seed(built):
    *_, defs = built
    summary = dg.materialize([*CHAIN, pipeline_summary], selection=[pipeline_summary], resources=defs.resources)
    meta = summary.asset_materializations_for_node("pipeline_summary")[0].metadata
    rows = [r.data for r in meta["seed_reference_by_source"].value.records]
    assert rows[0]["source"] == "local" and rows[0]["drifted"] == 1
    for asset in ("pass_matrix", "seed_reference"):
        results = check_results(defs.resources["store"], asset)
        assert len(results) >= 2 and all(r.passed for r in results), results
    db = defs.resources["store"].get()
    with db.transaction() as conn:  # a reference row missing a test is caught
        conn.execute(
            "DELETE FROM pass_matrix WHERE is_reference AND test_index = 0 AND prompt_id = (SELECT min(prompt_id) FROM pass_matrix WHERE is_reference)"
        )
    failed = {r.check_name for r in check_results(defs.resources["store"], "pass_matrix") if not r.passed}
    assert failed == {"matrix_complete"}
