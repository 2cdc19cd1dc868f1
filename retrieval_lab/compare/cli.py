"""``rlab-compare``: compare runs and sweeps; a table, significance tests, plots, an HTML report.

    rlab-compare outputs/multirun/<sweep dir> --baseline <run dir> --metric ndcg@10
    rlab-compare <run dir> <run dir> ... --html report.html
    rlab-compare <benchmark run> <run dir> ... --by-dataset --reference results/<model>/<revision>

Everything is computed in memory first and written (atomically) only once it all succeeded, so
bad input (exit status 2, one line on stderr) leaves no file half-written or stale-and-new mixed.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from retrieval_lab.atomic import atomic_write_bytes, atomic_write_text
from retrieval_lab.compare import by_dataset, plots, report, table
from retrieval_lab.compare.errors import CompareError
from retrieval_lab.compare.grouping import Group, group_runs, run_labels
from retrieval_lab.compare.runs import Run, find_run_dirs, load_runs
from retrieval_lab.compare.significance import compare_to_baseline
from retrieval_lab.run_layout import TRAINING_LOG


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="rlab-compare",
        description="Compare rlab runs (run directories or whole sweeps, searched recursively): "
                    "a table sorted by --metric with mean ± std over seeds, paired significance "
                    "tests against --baseline, plots, and an optional HTML report.")
    parser.add_argument("paths", nargs="+", type=Path, help="run or sweep directories")
    parser.add_argument("--metric", default="ndcg@10",
                        help="metric to sort, plot and test (default: ndcg@10)")
    parser.add_argument("--baseline",
                        help="run directory (its seed group is the baseline), a directory of one "
                             "group's seed runs, or a group label as printed; no tests without it")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    parser.add_argument("--bonferroni", action="store_true",
                        help="divide alpha by the number of groups tested against the baseline")
    parser.add_argument("--permutations", type=int, default=10_000,
                        help="permutations of the Fisher randomization test (default: 10000)")
    parser.add_argument("--permutation-seed", type=int, default=42,
                        help="random seed of the randomization test (default: 42)")
    parser.add_argument("--out", type=Path,
                        help="directory for table.md, table.csv and the PNGs (default: <first path>/compare)")
    parser.add_argument("--html", type=Path, help="also write a self-contained HTML report here")
    parser.add_argument("--by-dataset", action="store_true",
                        help="one column per dataset (single and benchmark runs) and their mean, "
                             f"each dataset tested against --baseline: {by_dataset.TABLE_MD}, "
                             f"{by_dataset.TABLE_CSV}, {by_dataset.PLOT}")
    parser.add_argument("--reference", type=Path, action="append", metavar="MTEB_RESULTS",
                        help="with --by-dataset: a row from an MTEB results file, or a directory of them "
                             "(results/<model>/<revision>/); repeatable")
    args = parser.parse_args(argv)
    if args.reference and not args.by_dataset:
        parser.error("--reference needs --by-dataset")
    if not 0 < args.alpha < 1:
        parser.error(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.permutations < 1:
        parser.error(f"--permutations must be positive, got {args.permutations}")
    return args


@dataclass
class Outputs:
    """What the command will write (path -> text or PNG bytes) and print."""

    files: dict[Path, str | bytes] = field(default_factory=dict)
    stdout: str = ""
    warnings: list[str] = field(default_factory=list)


def find_baseline(spec: str, groups: list[Group], failed: list[Run]) -> Group:
    path = Path(spec)
    if path.is_dir():
        dirs = set(find_run_dirs([path]))
        matching = [g for g in groups if any(run.path in dirs for run in g.runs)]
        if len(matching) == 1:
            return matching[0]
        if matching:
            labels = ", ".join(repr(g.label) for g in matching[:3]) + (", ..." if len(matching) > 3 else "")
            raise CompareError(f"--baseline {spec}: holds runs of {len(matching)} groups ({labels}); "
                               "give one run or one group's seed runs")
        if any(run.path in dirs for run in failed):
            raise CompareError(f"--baseline {spec}: the run did not finish with metrics")
        raise CompareError(f"--baseline {spec}: not among the compared runs (add it to the paths)")
    by_label = [g for g in groups if g.label == spec]
    if by_label:
        return by_label[0]
    raise CompareError(f"--baseline {spec}: no such directory, and no group is labelled so")


def _filename(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text)


def _images(frame: pd.DataFrame, groups: list[Group], runs: dict[str, Run],
            metric: str) -> dict[str, tuple[str, bytes]]:
    """caption -> (file name, PNG): the metric per group, training curves (of every run with a
    log, failed ones included: a diverging loss is worth seeing), and the metric against each
    swept parameter. ``frame`` gives the groups' order (best first)."""
    ranked = frame[frame["status"] == "done"]
    bars = [plots.Bar(row["label"] + (" " + table.marks(row) if table.marks(row) else ""),
                      row[metric], row[f"{metric}_std"], bool(row["baseline"]))
            for _, row in ranked.iterrows()]
    images = {f"{metric} per run (mean ± std over seeds)": ("metric_by_run.png",
                                                             plots.metric_bars(bars, metric))}
    logs = {label: log for label, run in runs.items()
            if (log := plots.read_training_log(run)) is not None}
    curves = plots.training_curves(logs) if logs else None
    if curves is not None:
        images[f"Training curves ({TRAINING_LOG})"] = ("training_curves.png", curves)
    by_label = {g.label: g for g in groups}
    ordered = [by_label[label] for label in ranked["label"]]
    for key in plots.swept_parameters(ordered):
        images[f"{metric} against {key}"] = (f"metric_vs_{_filename(key)}.png",
                                            plots.metric_vs_parameter(ordered, key, metric))
    return images


def build_by_dataset(args: argparse.Namespace, tasks=None) -> Outputs:
    result = by_dataset.build(args, tasks)
    out = args.out or args.paths[0] / "compare"
    outputs = Outputs(stdout=result.markdown, warnings=result.warnings)
    outputs.files = {out / name: content for name, content in result.files.items()}
    if args.html:
        title = "rlab-compare --by-dataset: " + " ".join(str(p) for p in args.paths)
        outputs.files[args.html] = by_dataset.html(result, title, args.metric)
    return outputs


def build(args: argparse.Namespace, tasks=None) -> Outputs:
    """Loads, tests, tabulates and plots; raises CompareError on bad input, writing nothing.
    ``tasks``: the MTEB task -> data config map for --reference (default: read from conf/data)."""
    if args.by_dataset:
        return build_by_dataset(args, tasks)
    runs = load_runs(args.paths)
    done = [run for run in runs if run.ok]
    failed = [run for run in runs if not run.ok]
    if not done:
        raise CompareError(f"{args.paths[0]}: no run finished with metrics ({len(failed)} failed or running)")
    metrics = table.metric_names(done)
    if args.metric not in metrics:
        raise CompareError(f"--metric {args.metric}: no run reports it (they have: {', '.join(metrics)})")

    labels = run_labels(runs)
    groups = group_runs(done)
    group_of = {run.path: g.label for g in groups for run in g.runs}
    failed_labelled = [(labels[run.path], run) for run in failed]

    baseline = find_baseline(args.baseline, groups, failed) if args.baseline else None
    comparisons, settings = {}, None
    if baseline is not None:
        comparisons = compare_to_baseline(groups, baseline, args.metric, args.alpha, args.bonferroni,
                                           args.permutations, args.permutation_seed)
        settings = table.TestSettings(baseline.label, args.alpha, len(groups) - 1, args.bonferroni,
                                      args.permutations)

    frame = table.build_frame(groups, failed_labelled, metrics, args.metric, baseline, comparisons)
    header, cells = table.display(frame, metrics, args.metric, settings)
    legend = table.legend(args.metric, settings)
    markdown = table.to_markdown(header, cells, legend, failed_labelled)

    images = _images(frame, groups, {labels[run.path]: run for run in runs}, args.metric)
    out = args.out or args.paths[0] / "compare"
    outputs = Outputs(stdout=markdown)
    outputs.files[out / "table.md"] = markdown
    outputs.files[out / "table.csv"] = table.to_csv(frame)
    for name, png in images.values():
        outputs.files[out / name] = png
    notes = [f"{label}: {c.note}" for label, c in comparisons.items() if c.note]
    if args.html:
        shown = list(frame.loc[frame["status"] == "done", "baseline"])  # the rows of ``cells``
        baseline_row = shown.index(True) if baseline is not None else None
        listing = [(labels[run.path], group_of.get(run.path, ""), run) for run in runs]
        title = "rlab-compare: " + " ".join(str(p) for p in args.paths)
        outputs.files[args.html] = report.render(
            title, header, cells, baseline_row, legend, notes,
            {caption: png for caption, (_, png) in images.items()}, listing, args.metric)
    outputs.warnings += notes
    outputs.warnings += [f"{label}: {run.status} ({run.path})" for label, run in failed_labelled]
    return outputs


def write(files: dict[Path, str | bytes]) -> None:
    for path, content in files.items():
        if isinstance(content, bytes):
            atomic_write_bytes(path, content)
        else:
            atomic_write_text(path, content)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        outputs = build(args)
    except CompareError as err:
        print(f"rlab-compare: {err}", file=sys.stderr)
        return 2
    write(outputs.files)
    print(outputs.stdout)
    for warning in outputs.warnings:
        print(f"rlab-compare: warning: {warning}", file=sys.stderr)
    print("wrote:\n" + "\n".join(f"  {path}" for path in outputs.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
