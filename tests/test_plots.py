"""Charts for the Dagster UI: markdown-embedded PNGs that are large enough to read, plus the pure helpers
that decide their labels, scales and layout."""

import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest

from codedpo_assets import plots

RANKERS = ("consensus", "self_verification", "codet", "pass_count", "all_tests", "random")


def png_size(md: str) -> tuple[int, int]:
    """Width and height of the PNG embedded in a markdown image, read from its IHDR chunk."""
    match = re.fullmatch(r"!\[[^\]\n]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md)
    assert match, md[:80]
    data = base64.b64decode(match.group(1))
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def readable(md: str) -> tuple[int, int]:
    width, height = png_size(md)
    assert 700 <= width <= 1000 and height >= 150
    return width, height


def test_status_counts_per_status_in_order_with_missing_cells():
    grid = [["pass", "pass", "fail"], ["timeout", "", "pass"], ["crash", "pass"]]
    assert plots.status_counts(grid) == {"pass": 4, "fail": 1, "error": 0, "timeout": 1, "crash": 1, "missing": 1}
    assert plots.status_counts([["pass", "error"]]) == {"pass": 1, "fail": 0, "error": 1, "timeout": 0, "crash": 0}


def test_index_ticks_thin_out_beyond_twenty():
    assert plots.index_ticks(5) == [0, 1, 2, 3, 4]
    assert plots.index_ticks(20) == list(range(20))
    assert plots.index_ticks(45) == list(range(0, 45, 3))
    assert len(plots.index_ticks(1000)) <= 20


def test_status_heatmap_png_keeps_title_and_grows_with_codes():
    small = plots.status_heatmap([["pass", "fail"], ["error", "timeout"]], "prompt abcd1234: 2 codes x 2 tests")
    assert small.startswith("![prompt abcd1234: 2 codes x 2 tests](")
    big = plots.status_heatmap([["pass"] * 45 for _ in range(30)], "prompt big")
    assert readable(big)[1] > readable(small)[1]
    readable(plots.status_heatmap([["pass", "crash"], ["fail"]], "ragged rows"))
    readable(plots.status_heatmap([], "no cells"))


def test_score_panels_all_rankers_and_empty_series():
    full = plots.score_panels({r: [0.1 * i for i in range(12)] for r in RANKERS}, "code scores")
    one_row = plots.score_panels({"consensus": [1.0, 1.0, 1.0], "codet": []}, "code scores")
    assert readable(full)[1] > readable(one_row)[1]  # 2 x 3 grid is taller than one row
    readable(plots.score_panels({}, "no rankers"))


def test_hbars_long_labels_and_height_grows_with_bars():
    few = plots.hbars({"correctness": 3, "efficiency": 0}, "pairs by kind", "prompts")
    many = plots.hbars({f"skip: a long reason number {i} that would overlap as a vertical bar label": i for i in range(12)},
                       "pairs by kind", "prompts")  # fmt: skip
    assert readable(many)[1] > readable(few)[1]
    readable(plots.hbars({"fraction": 0.25}, "share", "fraction"))
    readable(plots.hbars({}, "empty", "prompts"))


def test_funnel_labels_share_of_previous_stage():
    stages = [("seeds", 40), ("prompts", 34), ("programs", 12), ("tests", 0), ("cells", 0), ("pairs", 1000), ("kept", 3)]
    assert plots.funnel_labels(stages) == ["40", "34 (85 % of seeds)", "12 (35 % of prompts)", "0 (0 % of programs)", "0", "1,000",
                                           "3 (0.3 % of pairs)"]  # fmt: skip
    assert plots.funnel_labels([("tests", 40), ("cells", 500)]) == ["40", "500 (12.5 per test)"]
    pipeline = [("seeds", 30), ("prompts", 20), ("programs", 70), ("tests", 330), ("cells", 1090), ("pairs", 13)]
    bases = {"programs": "prompts", "tests": "prompts", "cells": "programs", "pairs": "prompts"}
    assert plots.funnel_labels(pipeline, bases) == [
        "30",
        "20 (67 % of seeds)",
        "70 (3.5 per prompt)",
        "330 (16.5 per prompt)",
        "1,090 (15.6 per program)",
        "13 (65 % of prompts)",
    ]


def test_funnel_log_scale_only_beyond_fifty_fold():
    assert not plots.funnel_log_scale([100, 2])  # exactly 50x
    assert plots.funnel_log_scale([101, 2])
    assert not plots.funnel_log_scale([5000, 0, 100])  # zeros are ignored
    assert plots.funnel_log_scale([5000, 0, 99])
    assert not plots.funnel_log_scale([0, 0])
    assert not plots.funnel_log_scale([])


@pytest.mark.parametrize("counts", [(120, 34, 340, 13600, 0), (120, 100, 90, 12), (0, 0)])
def test_funnel_png(counts):
    readable(plots.funnel([(f"stage {i}", c) for i, c in enumerate(counts)], "pipeline funnel"))


def test_text_bar_exact():
    assert plots.text_bar(0, 10) == " " * 20
    assert plots.text_bar(-1, 10) == " " * 20
    assert plots.text_bar(5, 0) == " " * 20
    assert plots.text_bar(10, 10) == "█" * 20
    assert plots.text_bar(15, 10) == "█" * 20  # clamped
    assert plots.text_bar(5, 10) == "█" * 10 + " " * 10
    assert plots.text_bar(0.001, 10) == "▏" + " " * 19  # positive never reads as zero
    assert plots.text_bar(3.3, 10) == "██████▋" + " " * 13  # 52.8 eighths -> 6 full + 5/8
    assert plots.text_bar(1, 4, width=4) == "█   "
    assert all(len(plots.text_bar(v, 7)) == 20 for v in (0, 0.5, 1, 3.14, 7, 9))


def test_curve_keys_one_panel_per_logged_metric():
    keys = ("loss", "rewards/accuracies", "rewards/margins")
    assert plots.curve_keys([{"step": 1, "loss": 0.7}, {"step": 2, "loss": 0.6}], keys) == ["loss"]
    assert plots.curve_keys([{"step": 1, "rewards/margins": 0.1}, {"step": 2, "loss": 0.6}], keys) == ["loss", "rewards/margins"]
    assert plots.curve_keys([], keys) == []


def test_curves_plot_pngs():
    none = plots.curves_plot([])
    only_loss = plots.curves_plot([{"step": 2, "loss": 0.6}, {"step": 1, "loss": 0.7}])
    full = plots.curves_plot(
        [{"step": i, "loss": 1 / i, "rewards/accuracies": 0.5, "rewards/margins": 0.1 * i} for i in range(1, 6)]
    )
    assert none.startswith("![Training curves](")
    assert readable(none)[1] < readable(only_loss)[1] < readable(full)[1]  # stacked panels: one per metric
    readable(plots.curves_plot([{"step": 1, "grad_norm": 2.0}]))


def test_no_figures_left_open():
    plt = pytest.importorskip("matplotlib.pyplot")
    before = plt.get_fignums()
    plots.status_heatmap([["pass"]], "t")
    plots.curves_plot([{"step": 1, "loss": 1.0}])
    assert plt.get_fignums() == before


def test_import_does_not_load_matplotlib():
    code = "import sys, codedpo_assets.plots; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_md_table_unchanged():
    assert plots.md_table([("a|b", "x\ny"), ("z" * 10, 1)], ["c1", "c2"], width=5) == (
        "| c1 | c2 |\n|---|---|\n| a\\|b | x⏎y |\n| zzzz… | 1 |"
    )
