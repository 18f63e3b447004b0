"""Incremental rebuild vs full rebuild: change 1 of N seed files, rerun the pipeline.

Run: .venv/bin/python benchmarks/incremental_bench.py [N]   (default N = 20 partitions)

Uses the real CLI (`python -m codedpo_assets.cli run --skip-training`) in a fresh Dagster home and
database, with generation served by a local scripted OpenAI-compatible server (so the figure
measures the platform — partition planning, Dagster runs, sandbox, DuckDB — not a model). Times are
the CLI's own "Done in" figure (after imports), side by side in one run.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import FakeServer

MODULE = """
def add(a, b):
    total = a * {k} // {k}
    total += b  # file {i}
    return total
"""  # every partition's seed is `add`, which the scripted server answers: prompts, codes, tests, pairs


def _write(tree: Path, i: int, k: int) -> None:
    (tree / f"m{i:03d}.py").write_text(textwrap.dedent(MODULE.format(i=i, k=k)))


def _run(cwd: Path, env: dict, *extra: str) -> tuple[float, str]:
    out = subprocess.run([sys.executable, "-m", "codedpo_assets.cli", "run", "--skip-training", *extra], cwd=cwd, env=env,
                         capture_output=True, check=False, text=True, timeout=3600)  # fmt: skip
    if out.returncode:
        raise SystemExit(out.stdout[-2000:] + out.stderr[-2000:])
    return float(re.search(r"Done in ([\d.]+) s", out.stdout).group(1)), out.stdout


def workspace(n: int, prefix: str) -> tuple[Path, Path, dict[str, str], FakeServer]:
    """A fresh directory with ``n`` seed files, sources.json, a Dagster home and a scripted model server;
    returns it, the seed tree, the environment that points the CLI / `dagster dev` at them, and the server."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    tree, home = work / "src", work / "home"
    tree.mkdir()
    home.mkdir()
    shutil.copy(REPO / "dagster_home" / "dagster.yaml", home)
    for i in range(n):
        _write(tree, i, 1)
    (work / "sources.json").write_text(json.dumps([{"name": "local", "kind": "directory", "path": str(tree)}]))
    server = FakeServer()
    env = {**os.environ, "DAGSTER_HOME": str(home), "CODEDPO_DB": str(work / "db.duckdb"), "CODEDPO_SOURCES": str(work / "sources.json"),
           "CODEDPO_GENERATOR": "openai", "CODEDPO_OPENAI_BASE_URL": server.url, "CODEDPO_OPENAI_MODEL": "fake"}  # fmt: skip
    return work, tree, env, server


def main(n: int) -> None:
    work, tree, env, server = workspace(n, "codedpo-incr-")
    try:
        full, _ = _run(work, env)
        _write(tree, n // 2, 2)  # edit one seed file
        calls = server.calls
        incremental, out = _run(work, env)
        assert "materializing 1" in out, out
        new_calls = server.calls - calls
        rebuild, _ = _run(work, env, "--rebuild")  # full rebuild with a warm generation cache, for reference
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{n} partitions: full build {full:.1f} s; after editing 1 file: incremental {incremental:.1f} s "
        f"({incremental / full:.1%} of the full build, {new_calls} model calls); --rebuild of all (cache warm) {rebuild:.1f} s "
        f"({incremental / rebuild:.1%})"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
