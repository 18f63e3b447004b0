import pytest

from codedpo_assets.decontam import Decontaminator, code_tokens, humaneval_decontaminator, humaneval_documents


def test_bundled_humaneval_is_read_offline():
    docs = humaneval_documents()
    assert len(docs) == 164
    assert "def has_close_elements" in docs["HumanEval/0"]


def test_copied_benchmark_solution_is_flagged_with_its_task():
    d = humaneval_decontaminator()
    copied = humaneval_documents()["HumanEval/10"]
    overlap = d.check("import sys\n\n" + copied)
    assert overlap.task_id == "HumanEval/10"
    assert overlap.score > 0.9 and d.is_contaminated(overlap)


def test_unrelated_code_passes():
    d = humaneval_decontaminator()
    code = "def rgb_to_yiq(r, g, b):\n    y = 0.30*r + 0.59*g + 0.11*b\n    i = 0.74*(r-y) - 0.27*(b-y)\n    return (y, i)\n"
    overlap = d.check(code)
    assert overlap.score < 0.05 and not d.is_contaminated(overlap)


def test_threshold_is_a_share_of_the_seed_ngrams():
    doc = " ".join(f"t{i}" for i in range(20))
    d = Decontaminator({"T/1": doc}, n=5, threshold=0.5)
    half = " ".join(f"t{i}" for i in range(10)) + " " + " ".join(f"u{i}" for i in range(10))
    overlap = d.check(half)
    assert overlap.score == pytest.approx(6 / 16)  # 6 of the 16 5-grams lie inside t0..t9
    assert not d.is_contaminated(overlap)
    assert Decontaminator({"T/1": doc}, n=5, threshold=0.3).is_contaminated(overlap)


def test_tokens_ignore_comments_and_layout():
    assert code_tokens("x = 1  # note\n\n\ny=2") == ["x", "=", "1", "y", "=", "2"]


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="threshold"):
        Decontaminator({}, threshold=0)
    with pytest.raises(ValueError, match="n-gram"):
        Decontaminator({}, n=0)
