"""``rlab-reproduce <name | spec.yaml> [options] [rlab overrides]``: run each row of a spec through
``rlab`` and compare its metrics with the pinned ones.

Each row runs as ``python -m retrieval_lab <spec overrides> <row overrides> <extra overrides>
hydra.run.dir=<output dir>/<row>``, its console output going to ``<output dir>/<row>.log``. The
table is printed as rows finish and ``reproduce.json`` rewritten after each. Exit status: 0 when
every metric is OK or OKish, 1 on any FAIL, 2 for bad arguments or a bad spec.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from retrieval_lab.atomic import atomic_write_json
from retrieval_lab.reproduce.spec import Row, Spec, SpecError, load_spec, resolve_spec
from retrieval_lab.reproduce.status import FAIL, OK, OKISH, classify, exit_status, worst
from retrieval_lab.run_layout import RunLayout

SUMMARY_FILE = "reproduce.json"
HYDRA_HINT = "Set the environment variable HYDRA_FULL_ERROR"  # printed after a task's traceback
COLUMNS = "{:<24} {:<20} {:>9} {:>9} {:>9}  {:<8} {}"


@dataclass
class Check:
    metric: str
    expected: float
    actual: float | None
    diff: float | None
    status: str


@dataclass
class RowResult:
    name: str
    command: list[str]
    run_dir: str
    returncode: int | None = None
    seconds: float | None = None
    error: str | None = None
    # The precision the run trained in (or encoded in, without training; None for BM25), from its
    # run.json, and the precision of the pins it was checked against (None: the row's expected).
    precision: str | None = None
    pinned_for: str | None = None
    checks: list[Check] = field(default_factory=list)
    # A benchmark row's datasets with no pin: <dataset>/ndcg@10 -> value, printed as REPORTED.
    reported: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return worst(c.status for c in self.checks)


def row_command(spec: Spec, row: Row, run_dir: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "retrieval_lab", *spec.overrides, *row.overrides, *extra,
            f"hydra.run.dir={run_dir}"]


def check_metrics(pins: dict[str, float], metrics: dict[str, float] | None) -> list[Check]:
    """One check per pinned metric; without metrics (the run failed) every one is FAIL."""
    checks = []
    for metric, expected in pins.items():
        actual = None if metrics is None else metrics.get(metric)
        diff = None if actual is None else actual - expected
        checks.append(Check(metric, expected, actual, diff, classify(expected, actual)))
    return checks


def run_row(spec: Spec, row: Row, output_dir: Path, extra: list[str]) -> RowResult:
    run_dir = output_dir / row.name
    layout = RunLayout(run_dir)
    result = RowResult(row.name, row_command(spec, row, run_dir, extra), str(run_dir))
    start = time.perf_counter()
    with open(output_dir / f"{row.name}.log", "w", encoding="utf-8") as log:
        process = subprocess.run(result.command, stdout=log, stderr=subprocess.STDOUT, check=False,
                                 stdin=subprocess.DEVNULL)
    result.seconds = round(time.perf_counter() - start, 1)
    result.returncode = process.returncode
    metrics = None
    if process.returncode != 0:
        result.error = f"rlab exited {process.returncode}: {_last_line(output_dir / f'{row.name}.log')}"
    else:
        try:
            metrics = run_metrics(layout)
        except (OSError, ValueError, KeyError) as err:
            result.error = f"no metrics in {layout.metrics} or {layout.benchmark} ({err})"
    result.precision = run_precision(run_dir)
    pins, result.pinned_for = row.pins(result.precision)
    result.checks = check_metrics(pins, metrics)
    result.reported = unpinned_datasets(pins, metrics or {})
    return result


def unpinned_datasets(pins: dict[str, float], metrics: dict[str, float]) -> dict[str, float]:
    """A benchmark row's datasets that no pin names: their nDCG@10, reported, never checked."""
    pinned = {metric.rsplit("/", 1)[0] for metric in pins if "/" in metric}
    return {m: v for m, v in metrics.items()
            if m.endswith("/ndcg@10") and (dataset := m.rsplit("/", 1)[0]) != "mean" and dataset not in pinned}


def run_metrics(layout: RunLayout) -> dict[str, float]:
    """A run's metrics; a benchmark run's as ``<dataset>/<metric>`` and ``mean/<metric>``."""
    if not layout.benchmark.is_file():
        return json.loads(layout.metrics.read_text())["metrics"]
    benchmark = json.loads(layout.benchmark.read_text())
    metrics = {f"mean/{m}": v for m, v in benchmark["mean"].items()}
    for name, entry in benchmark["datasets"].items():
        metrics.update({f"{name}/{m}": v for m, v in entry["metrics"].items()})
    return metrics


def run_precision(run_dir: Path) -> str | None:
    """What a run's record says it trained in, else what it encoded in; None if neither."""
    try:
        recorded = json.loads(RunLayout(run_dir).record.read_text()).get("precision") or {}
    except (OSError, ValueError):
        return None
    return next((recorded[stage]["precision"] for stage in ("train", "encode") if stage in recorded), None)


def _last_line(path: Path) -> str:
    """The error a failed run ended with: its last output line, less Hydra's closing hint."""
    text = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith(HYDRA_HINT)]
    return lines[-1] if lines else "(no output)"


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.5f}" if signed else f"{value:.4f}"


def print_row(result: RowResult) -> None:
    for check in result.checks:
        print(COLUMNS.format(result.name, check.metric, _fmt(check.expected), _fmt(check.actual),
                             _fmt(check.diff, signed=True), check.status, result.precision or "-"))
    for metric, value in result.reported.items():
        print(COLUMNS.format(result.name, metric, "-", _fmt(value), "-", "REPORTED", result.precision or "-"))
    if result.pinned_for:
        print(f"  {result.name}: checked against the pins for {result.pinned_for} (expected_at)")
    if result.error:
        print(f"  {result.name}: {result.error}")
    sys.stdout.flush()


def summary(spec: Spec, output_dir: Path, extra: list[str], started: str,
            results: list[RowResult], done: bool) -> dict[str, Any]:
    statuses = [c.status for r in results for c in r.checks]
    return {
        "spec": str(spec.path),
        "name": spec.name,
        "output_dir": str(output_dir),
        "extra_overrides": extra,
        "started": started,
        "finished": datetime.now().isoformat(timespec="seconds") if done else None,
        "status": worst(statuses) if done else "running",
        "counts": {s: statuses.count(s) for s in (OK, OKISH, FAIL)},
        "rows": [{**asdict(r), "status": r.status} for r in results],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="rlab-reproduce",
        description="Re-run the pinned reference configs of a reproduction spec and check their "
                    "metrics: OK (equal at 4 decimals), OKish (within 0.0005), FAIL.")
    parser.add_argument("spec", help="a name in conf/reproduce/ (e.g. scifact) or a spec .yaml file")
    parser.add_argument("overrides", nargs="*",
                        help="extra rlab overrides for every row, e.g. paths.cache_dir=/tmp/cache")
    parser.add_argument("--output-dir", type=Path,
                        help="where the row run directories go (default: outputs/reproduce/<name>/<time>)")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this row (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    return parser.parse_intermixed_args(argv)  # overrides may come before or after options


def _fail(message: str) -> int:
    print(f"rlab-reproduce: {message}", file=sys.stderr)
    return 2


def reproduce(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        spec = load_spec(resolve_spec(args.spec))
    except SpecError as err:
        return _fail(str(err))
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        return _fail(f"not an rlab override (key=value): {bad[0]!r}")
    rows = spec.rows
    if args.only:
        names = [r.name for r in spec.rows]
        unknown = [n for n in args.only if n not in names]
        if unknown:
            return _fail(f"--only {unknown[0]}: no such row in {spec.path}; rows: {', '.join(names)}")
        rows = [r for r in spec.rows if r.name in args.only]
    root = Path(os.environ.get("RLAB_ROOT", "."))
    output_dir = (args.output_dir or root / "outputs" / "reproduce" / spec.name
                  / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")).resolve()
    if args.dry_run:
        for row in rows:
            print(shlex.join(row_command(spec, row, output_dir / row.name, args.overrides)))
        return 0
    taken = [output_dir / r.name for r in rows if (output_dir / r.name).exists()]
    if taken:
        return _fail(f"{taken[0]} already exists: choose another --output-dir")
    output_dir.mkdir(parents=True, exist_ok=True)

    started = datetime.now().isoformat(timespec="seconds")
    results: list[RowResult] = []
    print(COLUMNS.format("row", "metric", "expected", "actual", "diff", "status", "precision"))
    for i, row in enumerate(rows, start=1):
        print(f"[{i}/{len(rows)}] {row.name}: running (log: {output_dir / row.name}.log)",
              file=sys.stderr, flush=True)
        results.append(run_row(spec, row, output_dir, args.overrides))
        print_row(results[-1])
        atomic_write_json(output_dir / SUMMARY_FILE,
                          summary(spec, output_dir, args.overrides, started, results, done=False))
    final = summary(spec, output_dir, args.overrides, started, results, done=True)
    atomic_write_json(output_dir / SUMMARY_FILE, final)
    counts = final["counts"]
    print(f"{spec.name}: {counts[OK]} OK, {counts[OKISH]} OKish, {counts[FAIL]} FAIL "
          f"over {len(results)} row(s); summary: {output_dir / SUMMARY_FILE}")
    return exit_status(c.status for r in results for c in r.checks)


def main() -> None:
    sys.exit(reproduce())
