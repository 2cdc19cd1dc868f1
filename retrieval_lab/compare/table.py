"""The comparison table: one row per group (best first by the chosen metric), as CSV and Markdown.

The CSV keeps numbers (mean and std columns, p-values, booleans) for further analysis; the
Markdown and HTML show formatted cells: ``mean ± std`` and the significance marks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from retrieval_lab.compare.grouping import Group
from retrieval_lab.compare.runs import Run
from retrieval_lab.compare.significance import Comparison, threshold

TTEST_MARK = "*"
FISHER_MARK = "†"


@dataclass(frozen=True)
class TestSettings:
    """How the significance marks were decided (for the legend)."""

    baseline: str
    alpha: float
    n_tested: int  # groups tested against the baseline (m of the Bonferroni correction)
    bonferroni: bool
    n_permutations: int

    @property
    def threshold(self) -> float:
        return threshold(self.alpha, self.n_tested, self.bonferroni)


def metric_names(runs: list[Run]) -> list[str]:
    """Every metric some run reports, in first-seen order."""
    return list(dict.fromkeys(name for run in runs for name in run.metrics))


def build_frame(groups: list[Group], failed: list[tuple[str, Run]], metrics: list[str],
                metric: str, baseline: Group | None,
                comparisons: dict[str, Comparison]) -> pd.DataFrame:
    """Groups sorted by mean ``metric`` (best first; a group lacking it last), then failed runs."""
    rows = []
    for group in groups:
        row = {"label": group.label, "status": "done", "n": group.n,
               "seeds": " ".join(str(run.seed) for run in group.runs if run.seed is not None),
               "baseline": group is baseline}
        for name in metrics:
            row[name] = group.mean(name)
            row[f"{name}_std"] = group.std(name)
        if baseline is not None:
            row[f"delta_{metric}"] = group.mean(metric) - baseline.mean(metric)
            comparison = comparisons.get(group.label, Comparison())
            test = comparison.test
            row["p_ttest"] = test.p_ttest if test else math.nan
            row["p_fisher"] = test.p_fisher if test else math.nan
            row["significant_ttest"] = bool(test and test.significant_ttest)
            row["significant_fisher"] = bool(test and test.significant_fisher)
            row["note"] = comparison.note or ""
        row["runs"] = ";".join(str(run.path) for run in group.runs)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(metric, ascending=False, na_position="last", kind="stable")
    failed_rows = pd.DataFrame([{"label": label, "status": run.status, "n": 1,
                                 "seeds": "" if run.seed is None else str(run.seed),
                                 "baseline": False, "note": run.error or "", "runs": str(run.path)}
                                for label, run in failed])
    return pd.concat([frame, failed_rows], ignore_index=True) if not failed_rows.empty else frame


def _number(value: float, std: float = math.nan) -> str:
    if pd.isna(value):
        return "–"
    return f"{value:.4f}" if pd.isna(std) else f"{value:.4f} ± {std:.4f}"


def _p_value(value: float, n_permutations: int | None = None) -> str:
    if pd.isna(value):
        return ""
    if value == 0 and n_permutations:
        # No permutation reached the observed difference: p is below the test's resolution.
        return f"< {1 / n_permutations:.0e}"
    return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"


def marks(row: pd.Series) -> str:
    return ((TTEST_MARK if row.get("significant_ttest") else "")
            + (FISHER_MARK if row.get("significant_fisher") else ""))


def display(frame: pd.DataFrame, metrics: list[str], metric: str,
            settings: TestSettings | None) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the completed groups (failed runs are listed apart);
    without test ``settings`` (no baseline) there are no test columns."""
    header = ["run", "n", *metrics]
    done = frame[frame["status"] == "done"]
    notes = settings is not None and bool(done["note"].any())
    if settings is not None:
        header += [f"Δ {metric}", "p (t-test)", "p (Fisher)"] + (["note"] if notes else [])
    cells = []
    for _, row in done.iterrows():
        label = f"{row['label']} (baseline)" if row["baseline"] else row["label"]
        line = [label, str(int(row["n"]))]
        for name in metrics:
            cell = _number(row[name], row[f"{name}_std"])
            if name == metric and marks(row):
                cell += " " + marks(row)
            line.append(cell)
        if settings is not None:
            delta = row[f"delta_{metric}"]
            delta = "" if row["baseline"] else "–" if pd.isna(delta) else f"{delta:+.4f}"
            line += [delta, _p_value(row["p_ttest"]), _p_value(row["p_fisher"], settings.n_permutations)]
            if notes:
                line.append(row["note"])
        cells.append(line)
    return header, cells


def legend(metric: str, settings: TestSettings | None) -> list[str]:
    lines = ["Cells: mean ± sample std (ddof=1) over the seeds of a group; n is the number of seeds."]
    if settings is None:
        lines.append("No significance tests (no --baseline given).")
        return lines
    correction = (f"alpha {settings.alpha:g} / {settings.n_tested} comparisons (Bonferroni) "
                  f"= {settings.threshold:.4g}"
                  if settings.bonferroni else f"alpha {settings.threshold:g}")
    lines += [
        (f"Paired tests of {metric} against the baseline '{settings.baseline}', per query "
         f"(a seed group's per-query scores are averaged over its seeds); significant at p <= {correction}."),
        (f"{TTEST_MARK} paired Student t-test significant; "
         f"{FISHER_MARK} Fisher randomization test significant ({settings.n_permutations} permutations)."),
    ]
    return lines


def to_markdown(header: list[str], cells: list[list[str]], legend_lines: list[str],
                failed: list[tuple[str, Run]]) -> str:
    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    out = [line(header), "|" + "---|" + "---:|" * (len(header) - 1)]
    out += [line(row) for row in cells]
    out += [""] + [f"{text}  " for text in legend_lines]
    if failed:
        out += ["", "Failed or unfinished runs:", ""]
        out += [f"- {label}: {run.status}{f' ({run.error})' if run.error else ''} — {run.path}"
                for label, run in failed]
    return "\n".join(out) + "\n"


def to_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, float_format="%.10g")
