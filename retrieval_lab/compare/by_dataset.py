"""``rlab-compare --by-dataset``: one row per run (or seed group), one column per dataset, and the mean.

Rows are what ``rlab-compare`` compares (seed groups of runs, grouping.py), where a run is
- a single run (``metrics.json``: its ``dataset``): one cell;
- a benchmark run (``benchmark.json``): a cell per dataset, each dataset's files (metrics.json,
  metrics_per_query.tsv, run.trec) in the sub-directory its entry's ``dir`` names;
and, after them, MTEB reference rows (``--reference``, references.py), which have no per-query
scores.

Datasets of a group (CQADupStack's 12 forums: a benchmark entry's ``group``, else the part of a
dataset name before ``/``) also get a group column, the mean of the members the row has, and are
counted once in the row's mean, as BEIR reports them: ``mean`` is over the row's top-level datasets,
a group being one. Rows that cover different datasets are said to, their means not being comparable.

With ``--baseline``, every dataset is tested as the plain table tests its one metric
(significance.py: ranx's paired t-test and Fisher randomization test on the per-query scores, a
seed group through its per-query mean, ``--bonferroni`` dividing alpha by the rows tested on
that dataset). Group and mean columns, and reference rows, are not tested.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrieval_lab.compare import plots, report, table
from retrieval_lab.compare.errors import CompareError
from retrieval_lab.compare.grouping import Group, group_runs, run_labels
from retrieval_lab.compare.references import Reference, TaskConfig, load_reference, task_configs
from retrieval_lab.compare.runs import (BENCHMARK_FILE, Run, _metrics, _read_json, drop_inert_overrides,
                                        find_run_dirs, load_run)
from retrieval_lab.compare.significance import Comparison, compare_to_baseline, threshold
from retrieval_lab.run_layout import METRICS_FILE, RunLayout
from retrieval_lab.benchmark import group_of

TABLE_MD = "table_by_dataset.md"
TABLE_CSV = "table_by_dataset.csv"
PLOT = "metric_by_dataset.png"
MEAN = "mean"
REFERENCE_SUFFIX = " (MTEB)"


@dataclass
class Loaded:
    """A run directory as --by-dataset reads it: the run, and its datasets' results."""

    run: Run
    datasets: dict[str, Run] = field(default_factory=dict)  # dataset -> a Run at the dataset's files
    groups: dict[str, str] = field(default_factory=dict)  # dataset -> its group (benchmark.json)
    benchmark: dict[str, Any] | None = None


@dataclass
class Cell:
    """A row's result on one dataset: one value per seed (a reference: one), the runs behind them."""

    values: list[float]
    runs: list[Run]  # [] for a reference (no per-query scores)
    comparison: Comparison | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else math.nan

    def marks(self) -> str:
        test = self.comparison.test if self.comparison else None
        return ((table.TTEST_MARK if test and test.significant_ttest else "")
                + (table.FISHER_MARK if test and test.significant_fisher else ""))


@dataclass
class Row:
    label: str
    kind: str  # "run", "benchmark" or "reference"
    n: int
    cells: dict[str, Cell]
    paths: list[Path]
    group: Group | None = None  # the seed group (None for a reference)
    baseline: bool = False

    @property
    def display_label(self) -> str:
        label = self.label + (REFERENCE_SUFFIX if self.kind == "reference" else "")
        return label + (" (baseline)" if self.baseline else "")


# --- loading -------------------------------------------------------------------------------------

def _benchmark_datasets(path: Path, run: Run) -> tuple[dict[str, Any], dict[str, Run], dict[str, str]]:
    where = path / BENCHMARK_FILE
    data = _read_json(where)
    entries = data.get("datasets")
    if not isinstance(entries, dict) or not entries:
        raise CompareError(f"{where}: 'datasets' must be a non-empty object of dataset -> its results")
    datasets, groups = {}, {}
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("dir"), str) or "metrics" not in entry:
            raise CompareError(f"{where}: datasets.{name} needs 'dir' (a path relative to the run) and 'metrics'")
        metrics = _metrics(entry["metrics"], f"{where}: datasets.{name}")
        datasets[name] = Run(path=path / entry["dir"], status="done", error=None, seed=run.seed,
                             overrides=dict(run.overrides), metrics=metrics)
        if entry.get("group") is not None:
            if not isinstance(entry["group"], str):
                raise CompareError(f"{where}: datasets.{name}.group must be a string")
            groups[name] = entry["group"]
    return data, datasets, groups


def load(path: Path) -> Loaded:
    """Reads one run directory for --by-dataset. A finished run (or one without run.json) needs
    ``metrics.json`` or ``benchmark.json``; failed and running ones are listed apart, as in the table."""
    run = load_run(path)
    layout = RunLayout(path)
    record_status = _read_json(layout.record).get("status") if layout.record.is_file() else None
    if record_status not in (None, "done"):
        return Loaded(run)  # failed or running (load_run took status and error from run.json)
    if (path / BENCHMARK_FILE).is_file():
        data, datasets, groups = _benchmark_datasets(path, run)
        # The run's own figures (the HTML report's run list): its stated mean, else the BEIR mean here.
        stated = _metrics(data.get("mean"), f"{path / BENCHMARK_FILE}: 'mean'")
        run.status, run.error = "done", None
        run.metrics = stated or beir_mean({name: r.metrics for name, r in datasets.items()}, groups)
        return Loaded(run, datasets, groups, data)
    if layout.metrics.is_file():
        if not run.ok:
            return Loaded(run)  # metrics.json with empty metrics: failed, as in the table
        evaluation = _read_json(layout.metrics)
        dataset = evaluation.get("dataset")
        if dataset is None and isinstance(run.config, dict):
            dataset = (run.config.get("data") or {}).get("name")
        if not isinstance(dataset, str) or not dataset:
            raise CompareError(f"{layout.metrics}: no 'dataset' key (and no data.name in {layout.config.name})")
        return Loaded(run, {dataset: run})
    if record_status == "done":
        raise CompareError(f"{path}: a finished run with neither {METRICS_FILE} nor {BENCHMARK_FILE} "
                           "(--by-dataset reads the datasets from one of them)")
    return Loaded(run)  # only Hydra's files: a job that died early (load_run: failed)


def dataset_group(name: str, groups: dict[str, str]) -> str | None:
    """The group a dataset is counted in (benchmark.json's ``group``, else the part before ``/``)."""
    return groups[name] if name in groups else group_of(name)


def beir_mean(datasets: dict[str, dict[str, float]], groups: dict[str, str]) -> dict[str, float]:
    """Metric -> the mean over the top-level datasets that report it, a group counted once."""
    out = {}
    for metric in dict.fromkeys(m for metrics in datasets.values() for m in metrics):
        values: dict[str, list[float]] = {}
        for name, metrics in datasets.items():
            if metric in metrics:
                values.setdefault(dataset_group(name, groups) or name, []).append(metrics[metric])
        out[metric] = float(np.mean([np.mean(v) for v in values.values()]))
    return out


def column_order(loaded: list[Loaded], references: list[Reference], groups: dict[str, str]) -> list[str]:
    """Datasets in the first benchmark run's order, then the others alphabetically; each group's
    column follows its last member."""
    first = next((entry for entry in loaded if entry.benchmark is not None), None)
    ordered = list(first.datasets) if first else []
    others = {d for entry in loaded for d in entry.datasets} | {d for ref in references for d in ref.datasets}
    ordered += sorted(others - set(ordered))
    columns = []
    for i, name in enumerate(ordered):
        columns.append(name)
        group = dataset_group(name, groups)
        if group is not None and not any(dataset_group(later, groups) == group for later in ordered[i + 1:]):
            columns.append(group)
    return columns


# --- the rows and their means --------------------------------------------------------------------

def units(row: Row, groups: dict[str, str]) -> dict[str, float]:
    """The row's top-level datasets -> value: a dataset's own, a group's the mean of its members."""
    out: dict[str, list[float]] = {}
    for name, cell in row.cells.items():
        out.setdefault(dataset_group(name, groups) or name, []).append(cell.mean)
    return {name: float(np.mean(values)) for name, values in out.items()}


def group_members(row: Row, group: str, groups: dict[str, str]) -> list[str]:
    return [name for name in row.cells if dataset_group(name, groups) == group]


def row_mean(row: Row, groups: dict[str, str]) -> float:
    values = list(units(row, groups).values())
    return float(np.mean(values)) if values else math.nan


def _check_group_names(loaded: list[Loaded]) -> dict[str, str]:
    groups: dict[str, str] = {}
    source: dict[str, Path] = {}
    for entry in loaded:
        for name, group in entry.groups.items():
            if groups.get(name, group) != group:
                raise CompareError(f"{entry.run.path / BENCHMARK_FILE}: dataset {name} is in group {group!r}, "
                                   f"but in {groups[name]!r} in {source[name] / BENCHMARK_FILE}")
            groups[name], source[name] = group, entry.run.path
    return groups


def build_rows(loaded: list[Loaded], references: list[Reference], metric: str) -> tuple[list[Row], list[str]]:
    """Rows (seed groups in first-seen order, then references) with their cells of ``metric``;
    and warnings."""
    by_path = {entry.run.path: entry for entry in loaded}
    done = [entry.run for entry in loaded if entry.run.ok or entry.datasets]
    warnings = []
    rows = []
    for group in group_runs(done):
        members = [by_path[run.path] for run in group.runs]
        names = list(dict.fromkeys(d for m in members for d in m.datasets))
        cells = {}
        for name in names:
            having = [m.datasets[name] for m in members if name in m.datasets and metric in m.datasets[name].metrics]
            if not having:
                continue
            if len(having) < len(members):
                warnings.append(f"{group.label}: {name}: {metric} from {len(having)} of its {len(members)} seed runs")
            cells[name] = Cell([r.metrics[metric] for r in having], having)
        kind = "benchmark" if any(m.benchmark is not None for m in members) else "run"
        rows.append(Row(group.label, kind, group.n, cells, [r.path for r in group.runs], group))
    taken = {row.label for row in rows}
    for ref in references:
        label = ref.label if ref.label not in taken else f"{ref.label} [{ref.path}]"
        taken.add(label)
        cells = {name: Cell([metrics[metric]], []) for name, metrics in ref.datasets.items() if metric in metrics}
        rows.append(Row(label, "reference", 1, cells, [ref.path]))
        warnings += ref.warnings
    return rows, warnings


def coverage_note(rows: list[Row], groups: dict[str, str]) -> str | None:
    """A sentence when rows cover different top-level datasets, or a group through different
    members (their means are then over different sets, not comparable); else None."""
    sets = {row.label: set(units(row, groups)) for row in rows}
    every = set().union(*sets.values()) if sets else set()
    parts = [f"{label} lacks {', '.join(sorted(every - have))}" for label, have in sets.items() if have != every]
    for group in sorted({dataset_group(n, groups) for row in rows for n in row.cells} - {None}):
        counts = {row.label: len(group_members(row, group, groups)) for row in rows}
        if len(set(counts.values()) - {0}) > 1:
            parts.append(f"{group} is the mean of different numbers of its datasets ("
                         + ", ".join(f"{label}: {k}" for label, k in counts.items() if k) + ")")
    if not parts:
        return None
    return ("The rows cover different datasets, so their means are over different sets and not comparable: "
            + "; ".join(parts) + ".")


# --- significance --------------------------------------------------------------------------------

def test_datasets(rows: list[Row], baseline: Row, metric: str, args: argparse.Namespace) -> dict[str, int]:
    """Fills each tested cell's comparison; returns dataset -> the number of rows tested on it (m)."""
    tested = {}
    for name, base_cell in baseline.cells.items():
        others = [row for row in rows
                  if row is not baseline and row.kind != "reference" and name in row.cells]
        if not others:
            continue
        control = Group(base_cell.runs, label=baseline.label)
        groups = [control] + [Group(row.cells[name].runs, label=row.label) for row in others]
        comparisons = compare_to_baseline(groups, control, metric, args.alpha, args.bonferroni,
                                          args.permutations, args.permutation_seed)
        for row in others:
            row.cells[name].comparison = comparisons[row.label]
        tested[name] = len(others)
    return tested


def find_baseline_row(spec: str, rows: list[Row], failed: list[Run], references: list[Reference]) -> Row:
    from retrieval_lab.compare.cli import find_baseline  # the table's own rule

    path = Path(spec)
    for row, ref in zip([r for r in rows if r.kind == "reference"], references):
        if spec == row.label or (path.exists() and path.resolve() == ref.path.resolve()):
            raise CompareError(f"--baseline {spec}: an MTEB reference has no per-query scores to test against")
    groups = [row.group for row in rows if row.group is not None]
    group = find_baseline(spec, groups, failed)
    return next(row for row in rows if row.group is group)


# --- output --------------------------------------------------------------------------------------

def display(rows: list[Row], columns: list[str], groups: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells: a dataset's mean (± std over seeds) and its marks, a group's
    mean of the members the row has, the row's mean; "–" where the row lacks the column."""
    header = ["run", "n", *columns, MEAN]
    group_names = _group_names(columns, groups)
    lines = []
    for row in rows:
        line = [row.display_label, str(row.n)]
        row_units = units(row, groups)
        for column in columns:
            if column in row.cells:
                cell = row.cells[column]
                line.append(table._number(cell.mean, cell.std) + (" " + cell.marks() if cell.marks() else ""))
            elif column in group_names:
                line.append(table._number(row_units.get(column, math.nan)))
            else:
                line.append("–")
        line.append(table._number(row_mean(row, groups)))
        lines.append(line)
    return header, lines


def _group_names(columns: list[str], groups: dict[str, str]) -> set[str]:
    return {g for c in columns if (g := dataset_group(c, groups)) is not None}


def legend(metric: str, rows: list[Row], columns: list[str], groups: dict[str, str],
           baseline: Row | None, tested: dict[str, int], args: argparse.Namespace,
           notes: list[str]) -> list[str]:
    lines = [f"Cells: {metric} on each dataset; mean ± sample std (ddof=1) over the seeds of a row where n > 1."]
    group_names = sorted(_group_names(columns, groups))
    counted = ", ".join(group_names)
    lines.append(f"{MEAN}: over the datasets the row has"
                 + (f", {counted} counted once as the mean of its members (the {counted} column), as BEIR reports it."
                    if group_names else "."))
    if any(row.kind == "reference" for row in rows):
        lines.append(f"{REFERENCE_SUFFIX.strip()}: an MTEB results file, mapped to our datasets by the data configs' "
                     "mteb.task_name; it has no per-query scores and is not tested.")
    if baseline is None:
        lines.append("No significance tests (no --baseline given).")
    else:
        if args.bonferroni:
            m = sorted(set(tested.values()))
            rule = (f"alpha {args.alpha:g} / m (Bonferroni), m the rows tested on the dataset "
                    f"({', '.join(str(v) for v in m) or 'none'})")
        else:
            rule = f"alpha {args.alpha:g}"
        lines += [
            (f"Paired tests of {metric} against the baseline '{baseline.label}' on each dataset, per query "
             f"(a seed group's per-query scores are averaged over its seeds); significant at p <= {rule}. "
             "The group and mean columns are not tested."),
            (f"{table.TTEST_MARK} paired Student t-test significant; "
             f"{table.FISHER_MARK} Fisher randomization test significant ({args.permutations} permutations)."),
        ]
        untested = [c for c in columns if c in {n for row in rows for n in row.cells} and c not in baseline.cells]
        if untested:
            lines.append(f"Not tested (the baseline lacks them): {', '.join(untested)}.")
    lines += notes
    return lines


def to_csv(rows: list[Row], columns: list[str], groups: dict[str, str], metric: str,
           args: argparse.Namespace, tested: dict[str, int]) -> str:
    """Long format: one line per (row, column): datasets, groups and the mean, with the tests."""
    records = []
    group_names = _group_names(columns, groups)
    for row in rows:
        common = {"label": row.label, "kind": row.kind, "baseline": row.baseline, "n": row.n, "metric": metric}
        row_units = units(row, groups)
        for column in columns:
            if column in group_names:
                members = group_members(row, column, groups)
                if members:
                    records.append({**common, "column": column, "column_kind": "group", "value": row_units[column],
                                    "over": ";".join(members)})
                continue
            cell = row.cells.get(column)
            if cell is None:
                continue
            test = cell.comparison.test if cell.comparison else None
            record = {**common, "column": column, "column_kind": "dataset", "value": cell.mean, "std": cell.std,
                      "group": dataset_group(column, groups) or ""}
            if cell.comparison is not None:
                record.update(p_ttest=test.p_ttest if test else math.nan,
                              p_fisher=test.p_fisher if test else math.nan,
                              significant_ttest=bool(test and test.significant_ttest),
                              significant_fisher=bool(test and test.significant_fisher),
                              threshold=threshold(args.alpha, tested[column], args.bonferroni),
                              note=cell.comparison.note or "")
            record["paths"] = ";".join(str(r.path) for r in cell.runs) if cell.runs else ";".join(map(str, row.paths))
            records.append(record)
        records.append({**common, "column": MEAN, "column_kind": "mean", "value": row_mean(row, groups),
                        "over": ";".join(row_units)})
    columns_out = ["label", "kind", "baseline", "n", "metric", "column", "column_kind", "group", "value", "std",
                   "over", "p_ttest", "p_fisher", "significant_ttest", "significant_fisher", "threshold",
                   "note", "paths"]
    frame = pd.DataFrame(records).reindex(columns=columns_out)
    return frame.to_csv(index=False, float_format="%.10g")


def image(rows: list[Row], columns: list[str], groups: dict[str, str], metric: str) -> bytes:
    """Grouped bars: the top-level datasets (a group as one) and the mean on x, one bar per row."""
    group_names = _group_names(columns, groups)
    xs = [c for c in columns if c in group_names or dataset_group(c, groups) is None]
    series = []
    for row in rows:
        row_units = units(row, groups)
        values, stds, marks = [], [], []
        for x in xs:
            cell = row.cells.get(x) if x not in group_names else None
            values.append(row_units.get(x, math.nan))
            stds.append(cell.std if cell else math.nan)
            marks.append(cell.marks() if cell else "")
        values.append(row_mean(row, groups))
        stds.append(math.nan)
        marks.append("")
        series.append(plots.Series(row.display_label, values, stds, marks, row.baseline))
    labels = [f"{x} (mean)" if x in group_names else x for x in xs] + [MEAN]
    return plots.grouped_bars(labels, series, metric)


@dataclass
class Result:
    files: dict[str, str | bytes]  # file name (in --out) -> content
    markdown: str
    header: list[str]
    cells: list[list[str]]
    legend: list[str]
    baseline_row: int | None
    notes: list[str]
    warnings: list[str]
    plot: bytes
    runs: list[tuple[str, str, Run]]  # (run label, row label, run) for the HTML report


def build(args: argparse.Namespace, tasks: dict[str, list[TaskConfig]] | None = None) -> Result:
    """The by-dataset table, its tests and plot; raises CompareError on bad input, writing nothing.
    ``tasks`` (MTEB task -> data configs) is read from conf/data when --reference needs it."""
    loaded = [load(path) for path in find_run_dirs(args.paths)]
    runs = [entry.run for entry in loaded]
    drop_inert_overrides(runs)
    for entry in loaded:  # the datasets' runs carry their run's overrides (labels, seed groups)
        for dataset_run in entry.datasets.values():
            dataset_run.overrides = dict(entry.run.overrides)
    if args.reference and tasks is None:
        tasks = task_configs()
    references = [load_reference(path, tasks or {}) for path in args.reference or []]
    failed = [entry.run for entry in loaded if not (entry.run.ok or entry.datasets)]
    if len(failed) == len(loaded):
        raise CompareError(f"{args.paths[0]}: no run finished with metrics ({len(failed)} failed or running)")

    reported = {m for entry in loaded for r in entry.datasets.values() for m in r.metrics}
    reported |= {m for ref in references for metrics in ref.datasets.values() for m in metrics}
    if args.metric not in reported:
        raise CompareError(f"--metric {args.metric}: no dataset of any row reports it "
                           f"(they have: {', '.join(sorted(reported))})")

    groups = _check_group_names(loaded)
    rows, warnings = build_rows(loaded, references, args.metric)
    columns = column_order(loaded, references, groups)

    baseline, tested = None, {}
    if args.baseline:
        baseline = find_baseline_row(args.baseline, rows, failed, references)
        baseline.baseline = True
        tested = test_datasets(rows, baseline, args.metric, args)

    notes = []
    coverage = coverage_note(rows, groups)
    if coverage:
        notes.append(coverage)
    for entry in loaded:
        skipped = (entry.benchmark or {}).get("skipped") or {}
        if isinstance(skipped, dict) and skipped:
            notes.append(f"{entry.run.path.name}: skipped "
                         + "; ".join(f"{name} ({why})" for name, why in skipped.items()))
    for row in rows:
        if row.kind == "benchmark" and row.n == 1 and row.group is not None:
            entry = next(e for e in loaded if e.run.path == row.paths[0])
            stated = (entry.benchmark or {}).get("mean", {}).get(args.metric)
            ours = row_mean(row, groups)
            if isinstance(stated, (int, float)) and not math.isnan(ours) and abs(stated - ours) > 1e-4:
                warnings.append(f"{row.paths[0] / BENCHMARK_FILE}: its mean {args.metric} {stated:.4f} is not "
                                f"the mean of its datasets here, {ours:.4f}")
    test_notes = [f"{row.label}: {name}: {cell.comparison.note}" for row in rows
                  for name, cell in row.cells.items() if cell.comparison and cell.comparison.note]

    header, cells = display(rows, columns, groups)
    legend_lines = legend(args.metric, rows, columns, groups, baseline, tested, args, notes)
    labels = run_labels(runs)
    failed_labelled = [(labels[run.path], run) for run in failed]
    markdown = table.to_markdown(header, cells, legend_lines, failed_labelled)
    plot = image(rows, columns, groups, args.metric)
    row_of = {path: row.label for row in rows for path in row.paths}
    listing = [(labels[run.path], row_of.get(run.path, ""), run) for run in runs]
    files = {TABLE_MD: markdown, TABLE_CSV: to_csv(rows, columns, groups, args.metric, args, tested), PLOT: plot}
    baseline_row = rows.index(baseline) if baseline is not None else None
    warnings += [n for n in notes if n is coverage] + test_notes
    warnings += [f"{label}: {run.status} ({run.path})" for label, run in failed_labelled]
    return Result(files, markdown, header, cells, legend_lines, baseline_row, test_notes, warnings, plot, listing)


def html(result: Result, title: str, metric: str) -> str:
    return report.render(title, result.header, result.cells, result.baseline_row, result.legend, result.notes,
                         {f"{metric} per dataset": result.plot}, result.runs, metric,
                         heading=f"Results by dataset ({metric})")
