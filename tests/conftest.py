"""Shared fixtures: temporary source trees and databases (no network, no DAGSTER_HOME)."""

import textwrap
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def module_with_function(i: int) -> str:
    """A small module with one keepable seed whose body differs per ``i``."""
    return f'''
    import math


    def scaled_norm_{i}(values, factor):
        """Euclidean norm times a factor."""
        total = 0.0
        for v in values:
            total += v * v * {i + 1}
        return math.sqrt(total) * factor
    '''


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    return root
