"""PNG plots, rendered to bytes (so nothing is written until everything has been computed).

Figures are drawn on matplotlib's Agg canvas directly, without pyplot's global state.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from retrieval_lab.compare.errors import CompareError
from retrieval_lab.compare.grouping import Group, distinguishing_keys
from retrieval_lab.compare.runs import Run

TRAIN_LOSS = "train/loss"
UNSET = "(unset)"  # the value of a swept key in a run that leaves it at its default


@dataclass(frozen=True)
class Bar:
    label: str
    mean: float
    std: float  # NaN for a single run
    highlight: bool = False  # the baseline


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def metric_bars(bars: list[Bar], metric: str) -> bytes:
    """Horizontal bars of ``metric`` per group, error bars one std across seeds, first on top."""
    fig = Figure(figsize=(9, 1.2 + 0.45 * len(bars)))
    ax = fig.add_subplot()
    y = np.arange(len(bars))
    means = [b.mean for b in bars]
    stds = [0.0 if math.isnan(b.std) else b.std for b in bars]
    colors = ["tab:orange" if b.highlight else "tab:blue" for b in bars]
    ax.barh(y, means, xerr=stds, color=colors, capsize=4)
    ax.set_yticks(y, [b.label for b in bars])
    ax.invert_yaxis()
    for yi, bar, std in zip(y, bars, stds):
        if not math.isnan(bar.mean):
            ax.annotate(f"{bar.mean:.4f}", (bar.mean + std, yi), xytext=(6, 0),
                        textcoords="offset points", va="center", fontsize=8)
    ax.set_xlabel(f"{metric} (mean ± std over seeds)")
    ax.set_title(f"{metric} per run" + (" (orange: baseline)" if any(b.highlight for b in bars) else ""))
    return _png(fig)


@dataclass(frozen=True)
class Series:
    """One row of a grouped bar chart: a value per x position (NaN: none), its std, its marks."""

    label: str
    values: list[float]
    stds: list[float]  # NaN: no error bar
    marks: list[str]  # significance marks shown above the bar
    highlight: bool = False  # the baseline


def grouped_bars(columns: list[str], series: list[Series], metric: str) -> bytes:
    """Vertical bars grouped by column (datasets on x), one bar per series in order, error bars
    one std across seeds where there is one, the marks above the bars; the last column (the
    mean) set apart; the legend below."""
    n = max(1, len(series))
    width = 0.8 / n
    legend_rows = math.ceil(n / 2)
    fig = Figure(figsize=(min(40.0, max(9.0, 1.5 + len(columns) * (0.25 * n + 0.5))), 4.8 + 0.25 * legend_rows))
    ax = fig.add_subplot()
    x = np.arange(len(columns))
    for i, s in enumerate(series):
        pos = x - 0.4 + width * (i + 0.5)
        values = np.array(s.values, dtype=float)
        stds = np.array(s.stds, dtype=float)
        shown = ~np.isnan(values)
        ax.bar(pos[shown], values[shown], width, color=f"C{i % 10}",
               edgecolor="black" if s.highlight else "none", linewidth=1.2,
               hatch="//" if s.highlight else None, label=s.label)
        spread = shown & ~np.isnan(stds)
        if spread.any():
            ax.errorbar(pos[spread], values[spread], yerr=stds[spread], fmt="none", ecolor="black", capsize=2)
        for xi, value, std, mark in zip(pos, values, stds, s.marks):
            if mark and not math.isnan(value):
                top = value + (0.0 if math.isnan(std) else std)
                ax.annotate(mark, (xi, top), xytext=(0, 2), textcoords="offset points",
                            ha="center", va="bottom", fontsize=8)
    if len(columns) > 1:
        ax.axvline(len(columns) - 1.5, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(x, columns, rotation=30, ha="right")
    ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.set_ylabel(metric)
    marked = any(mark for s in series for mark in s.marks)
    ax.set_title(f"{metric} per dataset" + (" (marks: significant against the baseline)" if marked else ""))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False)
    return _png(fig)


def read_training_log(run: Run) -> pd.DataFrame | None:
    """The run's Lightning CSVLogger log (``run_layout.TRAINING_LOG``), or None when the run has none."""
    path = run.layout.training_log
    if not path.is_file():
        return None
    try:
        log = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise CompareError(f"{path}: unreadable CSV ({err})") from None
    if "step" not in log.columns:
        raise CompareError(f"{path}: no 'step' column")
    return log


def training_curves(logs: dict[str, pd.DataFrame]) -> bytes | None:
    """``train/loss`` and every ``val/*`` column against ``step``, one line per run label.

    Returns None when no run has a column to plot.
    """
    columns = list(dict.fromkeys(c for log in logs.values() for c in log.columns
                                 if c == TRAIN_LOSS or c.startswith("val/")))
    if not columns:
        return None
    ncols = min(3, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig = Figure(figsize=(5.2 * ncols, 3.6 * nrows))
    for i, column in enumerate(columns):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        for label, log in logs.items():
            if column in log.columns:
                points = log[["step", column]].apply(pd.to_numeric, errors="coerce").dropna()
                ax.plot(points["step"], points[column], marker="." if len(points) < 30 else None,
                        label=label)
        ax.set_title(column)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize="small")
    return _png(fig)


def _as_number(value: str | None) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _category_order(value: str) -> tuple:
    """(unset) first, then numbers in numeric order, then the rest alphabetically."""
    number = _as_number(value)
    if value == UNSET:
        return (0, 0.0, "")
    return (1, number, "") if number is not None else (2, 0.0, value)


def swept_parameters(groups: list[Group]) -> list[str]:
    """Override keys (seed excluded) whose value differs across the groups."""
    return distinguishing_keys([g.overrides for g in groups])


def metric_vs_parameter(groups: list[Group], key: str, metric: str) -> bytes:
    """Mean ± std of ``metric`` against the value of ``key``.

    With several swept keys there is one line per combination of the other keys' values.
    When the runs that set ``key`` give two or more numbers, the axis is numeric (logarithmic when
    positive and spanning two decades or more) and runs leaving ``key`` at its default are left
    out (the title counts them); otherwise the values, ``(unset)`` included, are categories.
    """
    others = [k for k in swept_parameters(groups) if k != key]
    values = [g.overrides.get(key) for g in groups]
    numbers = {v: _as_number(v) for v in values if v is not None}
    numeric = None not in numbers.values() and len(set(numbers.values())) >= 2
    categories = sorted({UNSET if v is None else v for v in values}, key=_category_order)

    series: dict[str, list[tuple[float, float, float]]] = {}
    for group, value in zip(groups, values):
        if numeric and value is None:
            continue
        name = " ".join(f"{k}={group.overrides.get(k, UNSET)}" for k in others)
        x = numbers[value] if numeric else categories.index(UNSET if value is None else value)
        std = group.std(metric)
        series.setdefault(name, []).append((x, group.mean(metric), 0.0 if math.isnan(std) else std))

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for name, points in series.items():
        points.sort()
        xs, means, stds = zip(*points)
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=4,
                    linestyle="-" if numeric else "none", label=name or None)
    title = f"{metric} against {key}"
    if numeric:
        xs = list(numbers.values())
        if min(xs) > 0 and max(xs) / min(xs) >= 100:
            ax.set_xscale("log")
        unset = values.count(None)
        title += f" ({unset} run{'s' if unset > 1 else ''} at the default left out)" if unset else ""
    else:
        ax.set_xticks(range(len(categories)), categories, rotation=20, ha="right")
    if others:
        ax.legend(fontsize="small")
    ax.set_xlabel(key)
    ax.set_ylabel(f"{metric} (mean ± std over seeds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _png(fig)
