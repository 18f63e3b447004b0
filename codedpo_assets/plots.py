"""Small PNG plots and markdown previews for Dagster asset metadata (rendered inline by the UI)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

STATUS_COLORS = {"pass": "#2e7d32", "fail": "#c62828", "error": "#ef6c00", "timeout": "#6a1b9a", "crash": "#212121"}


def _figure(width: float = 6, height: float = 3):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(width, height), dpi=80)


def _markdown(plt, fig, title: str) -> str:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def curves_plot(curves: Sequence[Mapping[str, float]], keys: Sequence[str] = ("loss", "rewards/accuracies", "rewards/margins")) -> str:
    """Training curves over steps."""
    plt, fig, ax = _figure()
    steps = [c["step"] for c in curves]
    for key in keys:
        if any(key in c for c in curves):
            ax.plot(steps, [c.get(key, float("nan")) for c in curves], marker=".", label=key)
    ax.set_xlabel("step")
    ax.legend()
    return _markdown(plt, fig, "training curves")


def status_heatmap(statuses: Sequence[Sequence[str]], title: str) -> str:
    """Codes × tests grid coloured by sandbox status."""
    from matplotlib.colors import ListedColormap

    names = list(STATUS_COLORS)
    grid = [[names.index(s) if s in names else len(names) - 1 for s in row] for row in statuses]
    plt, fig, ax = _figure(min(2 + 0.35 * len(grid[0]), 10), min(1.5 + 0.35 * len(grid), 8))
    ax.imshow(grid, cmap=ListedColormap(list(STATUS_COLORS.values())), vmin=0, vmax=len(names) - 1, aspect="auto")
    ax.set_xlabel("test")
    ax.set_ylabel("code")
    ax.set_title(title, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in STATUS_COLORS.values()]
    ax.legend(handles, names, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _markdown(plt, fig, "pass matrix")


def histogram(values: Mapping[str, Sequence[float]], xlabel: str) -> str:
    """Overlaid histograms, one per series."""
    plt, fig, ax = _figure()
    for label, series in values.items():
        if len(series):
            ax.hist(series, bins=20, alpha=0.6, label=label)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=7)
    return _markdown(plt, fig, xlabel)


def bars(counts: Mapping[str, float], ylabel: str) -> str:
    plt, fig, ax = _figure(4, 2.5)
    ax.bar(list(counts), list(counts.values()), color="#1565c0")
    ax.set_ylabel(ylabel)
    return _markdown(plt, fig, ylabel)


def md_table(rows: Sequence[Sequence], columns: Sequence[str], width: int = 60) -> str:
    """A markdown preview table; cells are cut to ``width`` characters, newlines shown as ⏎."""

    def cell(v) -> str:
        text = str(v).replace("\n", "⏎").replace("|", "\\|")
        return text if len(text) <= width else text[: width - 1] + "…"

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])
