"""PNG charts and markdown previews for Dagster asset metadata.

The Dagster UI renders markdown metadata inline, so every chart is a PNG embedded as a data URI in a
markdown string. Charts are read at a glance in a side panel: each has a title, labelled axes, integer
ticks for counts, fonts of at least 10 pt and a width of about 9 inches at 100 dpi. Matplotlib is
imported lazily (importing this module stays cheap for asset definitions) and only through the
object-oriented ``Figure`` API with the Agg canvas: no pyplot figure registry, so nothing can leak
across materializations and concurrent runs do not share global figure state.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

STATUS_COLORS = {"pass": "#2e7d32", "fail": "#c62828", "error": "#ef6c00", "timeout": "#6a1b9a", "crash": "#212121"}
MISSING = "missing"  # heatmap cells without a recorded status (the pass matrix leaves them "")
_MISSING_COLOR = "#e0e0e0"
_BAR_COLOR = "#1565c0"
_DPI = 100
_WIDTH = 9.0  # inches: 900 px, wide enough to read, narrow enough for the metadata panel
_STYLE: dict[str, Any] = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 10, "ytick.labelsize": 10,
          "legend.fontsize": 10, "legend.title_fontsize": 10, "figure.titlesize": 13}  # fmt: skip
_LOG_RATIO = 50  # funnel: beyond this max/min ratio the small stages vanish on a linear axis
_CURVE_LABELS = {"loss": "loss (nats)", "rewards/accuracies": "accuracy (fraction)", "rewards/margins": "margin (β · log-ratio)"}
_PARTIAL_BLOCKS = "▏▎▍▌▋▊▉"  # 1/8 … 7/8 of a character cell


@contextmanager
def _figure(height: float, nrows: int = 1, ncols: int = 1, width: float = _WIDTH, **subplots) -> Iterator:
    """A constrained-layout figure and its axes (an array when ``squeeze=False``), drawn under the shared style."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_STYLE):  # type: ignore[arg-type]  # its stubs type rc keys as literals only
        fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
        try:
            yield fig, fig.subplots(nrows, ncols, **subplots)
        finally:
            fig.clear()


def _markdown(fig, title: str) -> str:
    """Render ``fig`` with the Agg canvas and embed it as a markdown image (``title`` is the alt text)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    alt = " ".join(title.replace("[", "(").replace("]", ")").split())
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def _say(ax, text: str) -> None:
    """Replace an empty panel's axes with a centred message, so an empty input reads as such, not as a blank plot."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=12, color="#555555")


def _message(title: str, text: str) -> str:
    """A small titled figure that only says ``text`` (nothing to plot)."""
    with _figure(2.0) as (fig, ax):
        ax.set_title(title)
        _say(ax, text)
        return _markdown(fig, title)


def _integer_ticks(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _number(value: float) -> str:
    """Counts with thousands separators, other values to 3 significant digits."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:.3g}"


def index_ticks(count: int, limit: int = 20) -> list[int]:
    """Every index up to ``limit`` of them, else every k-th from 0, so tick labels never crowd."""
    return list(range(0, count, max(1, math.ceil(count / limit))))


def status_counts(statuses: Sequence[Sequence[str]]) -> dict[str, int]:
    """Cells per status in STATUS_COLORS order (zeros kept), plus ``missing`` when some cells have no known status."""
    cells = [s for row in statuses for s in row]
    counts = {name: sum(s == name for s in cells) for name in STATUS_COLORS}
    missing = len(cells) - sum(counts.values())
    return {**counts, MISSING: missing} if missing else counts


def status_heatmap(statuses: Sequence[Sequence[str]], title: str) -> str:
    """Codes × tests grid coloured by sandbox status, legend with cell counts; ``title`` names the prompt."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    n, m = len(statuses), max((len(row) for row in statuses), default=0)
    if not n or not m:
        return _message(title, "no cells")
    names = [*STATUS_COLORS, MISSING]
    index = {name: i for i, name in enumerate(names)}
    grid = np.full((n, m), index[MISSING])
    for i, row in enumerate(statuses):
        grid[i, : len(row)] = [index.get(s, index[MISSING]) for s in row]
    colors = [*STATUS_COLORS.values(), _MISSING_COLOR]
    with _figure(min(max(2.0 + 0.25 * n, 4.0), 10.0)) as (fig, ax):
        ax.imshow(grid, cmap=ListedColormap(colors), vmin=-0.5, vmax=len(names) - 0.5, interpolation="nearest", aspect="auto")
        xs, ys = index_ticks(m), index_ticks(n)
        ax.set_xticks(xs, [f"test {j}" for j in xs], rotation=45, ha="right", rotation_mode="anchor")
        ax.set_yticks(ys, [f"code {i}" for i in ys])
        ax.set_xticks(np.arange(-0.5, m, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=min(1.0, 30 / max(n, m)))
        ax.tick_params(which="minor", length=0)
        ax.set_xlabel("test (column index)")
        ax.set_ylabel("code (row index)")
        ax.set_title(title)
        counts = status_counts(statuses)
        handles = [Patch(facecolor=colors[index[name]], edgecolor="#999999") for name in counts]
        fig.legend(handles, [f"{name} ({c:,})" for name, c in counts.items()], loc="outside right upper", title="status (cells)")
        return _markdown(fig, title)


def score_panels(scores: Mapping[str, Sequence[float]], title: str) -> str:
    """One histogram per ranker (small multiples): rankers score on different scales, so none share an axis."""
    names = list(scores)
    ncols = min(3, max(1, len(names)))
    nrows = max(1, math.ceil(len(names) / ncols))
    with _figure(1.0 + 3.0 * nrows, nrows, ncols, squeeze=False) as (fig, axes):
        fig.suptitle(title)
        panels = list(axes.flat)
        for ax, name in zip(panels, names):
            values = [float(v) for v in scores[name] if math.isfinite(v)]
            ax.set_title(f"{name} (n={len(values):,})")
            if not values:
                _say(ax, "no codes")
                continue
            ax.hist(values, bins=min(20, len(set(values))), color=_BAR_COLOR, edgecolor="white")
            ax.set_xlabel("score")
            ax.set_ylabel("codes")
            _integer_ticks(ax.yaxis)
        for ax in panels[len(names) :]:
            ax.set_axis_off()
        if not names:
            _say(panels[0], "no rankers")
        return _markdown(fig, title)


def _bar_height(labels: Sequence[str]) -> float:
    """Figure height that gives every bar room for its (wrapped) label."""
    lines = max((label.count("\n") + 1 for label in labels), default=1)
    return max(2.5, 1.3 + len(labels) * (0.2 + 0.2 * lines))


def _wrap(label: str) -> str:
    return "\n".join(textwrap.wrap(label, 40, max_lines=3, placeholder="…")) or label


def hbars(counts: Mapping[str, float], title: str, xlabel: str) -> str:
    """Horizontal bars in mapping order, top to bottom, each with its value printed at the end."""
    if not counts:
        return _message(title, "nothing to show")
    labels, values = [_wrap(str(k)) for k in counts], [float(v) for v in counts.values()]
    with _figure(_bar_height(labels)) as (fig, ax):
        bars = ax.barh(range(len(values)), values, color=_BAR_COLOR)
        ax.bar_label(bars, [_number(v) for v in values], padding=3)
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
        top = max([*values, 0.0])
        ax.set_xlim(min([*values, 0.0]) * 1.15, top * 1.15 if top > 0 else 1.0)
        if all(v.is_integer() for v in values):
            _integer_ticks(ax.xaxis)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        return _markdown(fig, title)


def funnel_labels(stages: Sequence[tuple[str, int]], bases: Mapping[str, str] | None = None) -> list[str]:
    """Each stage's count and its size relative to its base — the stage before, or the one ``bases``
    names (programs and tests are counted per prompt, cells per program): ``12 (35 % of prompts)``,
    or ``400 (12.5 per test)`` for stages that fan out, where a percentage would be unreadable."""
    counts, labels = dict(stages), []
    for i, (name, count) in enumerate(stages):
        text = f"{count:,}"
        base = (bases or {}).get(name, stages[i - 1][0] if i else "")
        before = counts.get(base, 0)
        if before > 0:
            ratio = count / before
            if ratio > 1:
                text += f" ({ratio:.3g} per {base.removesuffix('s')})"
            else:
                percent = 100 * ratio
                shown = f"{percent:.0f}" if percent >= 1 or percent == 0 else f"{percent:.1g}"  # 0.3 %, not a misleading 0 %
                text += f" ({shown} % of {base})"
        labels.append(text)
    return labels


def funnel_log_scale(counts: Sequence[int]) -> bool:
    """Log x only when the largest count exceeds 50× the smallest non-zero one (else small stages stay visible linearly)."""
    positive = [c for c in counts if c > 0]
    return bool(positive) and max(positive) > _LOG_RATIO * min(positive)


def funnel(stages: Sequence[tuple[str, int]], title: str, bases: Mapping[str, str] | None = None) -> str:
    """Pipeline stages as horizontal bars top to bottom, each labelled with its count and share of the stage before."""
    if not stages:
        return _message(title, "no stages")
    names, counts = [_wrap(name) for name, _ in stages], [c for _, c in stages]
    log = funnel_log_scale(counts)
    with _figure(_bar_height(names)) as (fig, ax):
        ax.barh(range(len(counts)), counts, color=_BAR_COLOR)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        top = max([*counts, 1])
        if log:
            ax.set_xscale("log")
            ax.set_xlim(min(c for c in counts if c > 0) / 2, top * 1.1)
            ax.set_xlabel(f"count (log scale: largest stage > {_LOG_RATIO}× smallest non-zero)")
        else:
            ax.set_xlim(0, top * 1.05)
            _integer_ticks(ax.xaxis)
            ax.set_xlabel("count")
        to_axes = ax.transData + ax.transAxes.inverted()
        for y, (count, label) in enumerate(zip(counts, funnel_labels(stages, bases))):
            end = to_axes.transform((count, y))[0] if count > 0 else 0.0
            inside = end > 0.55  # long bars hold their label; short ones get it to their right
            ax.annotate(label, (max(end, 0.0), y), xycoords=("axes fraction", "data"), xytext=(-4 if inside else 4, 0),
                        textcoords="offset points", ha="right" if inside else "left", va="center",
                        color="white" if inside else "#212121")  # fmt: skip
        ax.set_title(title)
        return _markdown(fig, title)


def curve_keys(curves: Sequence[Mapping[str, float]], keys: Sequence[str]) -> list[str]:
    """The metrics among ``keys`` logged at least once, in ``keys`` order: each gets its own panel."""
    return [key for key in keys if any(key in c for c in curves)]


def curves_plot(
    curves: Sequence[Mapping[str, float]], keys: Sequence[str] = ("loss", "rewards/accuracies", "rewards/margins")
) -> str:
    """Training metrics over optimizer steps, one stacked panel per metric: loss, accuracy and margin have unrelated scales."""
    title = "Training curves"
    present = curve_keys(curves, keys)
    if not present:
        return _message(title, "no steps logged" if not curves else "none of " + ", ".join(keys) + " logged")
    rows = sorted(curves, key=lambda c: c["step"])
    steps = [c["step"] for c in rows]
    with _figure(1.0 + 2.4 * len(present), len(present), sharex=True, squeeze=False) as (fig, axes):
        fig.suptitle(title)
        for ax, key in zip(axes[:, 0], present):
            ax.plot(steps, [c.get(key, float("nan")) for c in rows], marker="o", markersize=3, color=_BAR_COLOR)
            ax.set_title(key, loc="left", fontsize=10)
            ax.set_ylabel(_CURVE_LABELS.get(key, key))
            ax.grid(alpha=0.3)
        last = axes[-1, 0]
        last.set_xlabel("optimizer step")
        _integer_ticks(last.xaxis)
        return _markdown(fig, title)


def text_bar(value: float, maximum: float, width: int = 20) -> str:
    """A ``width``-character unicode bar of ``value / maximum`` in eighth-blocks, for markdown tables (the UI shows tables
    inline but images only behind a link). Non-positive or NaN input gives a blank bar; any positive value shows at least
    one eighth, so it never reads as zero; values past ``maximum`` are clamped to a full bar."""
    if width <= 0:
        return ""
    if not (value > 0 and maximum > 0):
        return " " * width
    eighths = min(width * 8, max(1, round(min(float(value) / float(maximum), 1.0) * width * 8)))
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_PARTIAL_BLOCKS[rest - 1] if rest else "")).ljust(width)


def md_table(rows: Sequence[Sequence], columns: Sequence[str], width: int = 60) -> str:
    """A markdown preview table; cells are cut to ``width`` characters, newlines shown as ⏎."""

    def cell(v) -> str:
        text = str(v).replace("\n", "⏎").replace("|", "\\|")
        return text if len(text) <= width else text[: width - 1] + "…"

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])
