import pytest

from codedpo_assets.normalize import canonical_dump, normalized_hash

BASE = '''
def mean(values: list[float]) -> float:
    """Average."""
    total = 0
    for v in values:
        total += v
    return total / len(values)
'''
RENAMED = """
def avg(xs):
    # comment and formatting differ
    s = 0
    for item in xs:   s += item
    return s / len(xs)
"""
DIFFERENT = BASE.replace("total / len(values)", "total / max(len(values), 1)")


def test_rename_format_docstring_and_annotations_do_not_change_the_hash():
    assert normalized_hash(BASE) == normalized_hash(RENAMED)


def test_semantic_change_changes_the_hash():
    assert normalized_hash(BASE) != normalized_hash(DIFFERENT)


def test_globals_and_attributes_are_not_renamed():
    # calling a different builtin or module function is a different program
    assert normalized_hash("def f(x):\n    return len(x)") != normalized_hash("def f(x):\n    return sum(x)")
    assert normalized_hash("import math\ndef f(x):\n    return math.floor(x)") != normalized_hash(
        "import math\ndef f(x):\n    return math.ceil(x)"
    )


def test_unparsable_code_raises():
    with pytest.raises(SyntaxError):
        canonical_dump("def f(:")
