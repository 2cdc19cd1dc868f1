"""Finding run directories under the given paths and loading what ``rlab`` wrote there.

A run directory holds ``run.json`` (the run record) and/or ``metrics.json`` (the evaluation);
a benchmark run (several datasets) holds ``benchmark.json`` instead of ``metrics.json``, read by
``rlab-compare --by-dataset`` (by_dataset.py).
A Hydra job directory with only ``.hydra/overrides.yaml`` also counts: it is a job that died
before writing either, and is reported as failed rather than silently missing from a sweep.
Every path is taken from :class:`~retrieval_lab.run_layout.RunLayout`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from retrieval_lab.compare.errors import CompareError
from retrieval_lab.run_layout import BENCHMARK_FILE, METRICS_FILE, OVERRIDES_FILE, RECORD_FILE, RunLayout

# What marks a directory as a run directory: any of these files in it.
MARKERS = (RECORD_FILE, METRICS_FILE, BENCHMARK_FILE, OVERRIDES_FILE)

# Overrides that say where or how verbosely a run ran, or how it was tracked, not what it computed.
INFRASTRUCTURE_PREFIXES = ("hydra.", "paths.", "progress", "logger", "tags")


@dataclass
class Run:
    path: Path
    status: str  # "done", "failed" or "running"
    error: str | None
    seed: Any  # from run.json, else from a ``seed=`` override, else None (unknown)
    overrides: dict[str, str]  # key -> value of the user's overrides, infrastructure dropped
    metrics: dict[str, float] = field(default_factory=dict)  # overall metrics; {} when none
    config: dict[str, Any] | None = None  # the resolved config (config.yaml), where there is one

    @property
    def ok(self) -> bool:
        """Finished with metrics: the runs that are compared (the others are listed as failed)."""
        return self.status == "done" and bool(self.metrics)

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.path)


def override_key(override: str) -> str:
    """``+a.b=1`` -> ``a.b``: Hydra's add/force-add/delete prefixes are not part of the key."""
    return override.split("=", 1)[0].lstrip("+~")


def is_infrastructure(key: str) -> bool:
    return key.startswith(INFRASTRUCTURE_PREFIXES)


def is_run_dir(path: Path) -> bool:
    return any((path / marker).is_file() for marker in MARKERS)


def _natural_key(path: Path) -> list[tuple[int, Any]]:
    # Sweep jobs are 0/, 1/, ..., 10/: sort them as numbers, not as strings.
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", path.name)]


def _walk(root: Path) -> list[Path]:
    if is_run_dir(root):
        return [root]  # a run's own subdirectories (csv/, index/) hold no further runs
    children = [c for c in root.iterdir()
                if c.is_dir() and not c.is_symlink() and not c.name.startswith(".")]
    return [run for child in sorted(children, key=_natural_key) for run in _walk(child)]


def find_run_dirs(paths: list[Path]) -> list[Path]:
    """Run directories at or below each path, in the order given (sweep jobs in numeric order)."""
    found: dict[Path, None] = {}
    for path in paths:
        if not path.exists():
            raise CompareError(f"{path}: no such file or directory")
        if not path.is_dir():
            raise CompareError(f"{path}: not a directory (give run or sweep directories)")
        runs = _walk(path)
        if not runs:
            raise CompareError(f"{path}: no run directories below it (none holds "
                               f"{RECORD_FILE}, {METRICS_FILE}, {BENCHMARK_FILE} or {OVERRIDES_FILE})")
        found.update(dict.fromkeys(run.resolve() for run in runs))
    return list(found)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CompareError(f"{path}: unreadable JSON ({err})") from None
    if not isinstance(data, dict):
        raise CompareError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise CompareError(f"{path}: unreadable YAML ({err})") from None


def _metrics(value: Any, where: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CompareError(f"{where}: 'metrics' must be an object of metric -> number")
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)) or math.isnan(number):
            raise CompareError(f"{where}: metric {name!r} is {number!r}, not a number")
    return {name: float(number) for name, number in value.items()}


def _overrides(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
        raise CompareError(f"{where}: overrides must be a list of strings")
    pairs = (o.split("=", 1) for o in value)
    kept = {override_key(o[0]): (o[1] if len(o) == 2 else "") for o in pairs}
    return {key: val for key, val in kept.items() if not is_infrastructure(key)}


def load_run(path: Path) -> Run:
    """Reads a run directory; ``run.json`` is preferred for status, seed and overrides."""
    layout = RunLayout(path)
    record = _read_json(layout.record) if layout.record.is_file() else None
    evaluation = _read_json(layout.metrics) if layout.metrics.is_file() else None

    if record is not None and "overrides" in record:
        overrides = _overrides(record["overrides"], f"{layout.record}: 'overrides'")
    elif layout.overrides.is_file():
        overrides = _overrides(_read_yaml(layout.overrides), str(layout.overrides))
    else:
        overrides = {}

    if evaluation is not None:
        if "metrics" not in evaluation:
            raise CompareError(f"{layout.metrics}: no 'metrics' key")
        metrics = _metrics(evaluation["metrics"], str(layout.metrics))
    elif record is not None:
        metrics = _metrics(record.get("metrics"), str(layout.record))
    else:
        metrics = {}

    if record is not None:
        status, error = record.get("status"), record.get("error")
        error = None if error is None else str(error)
        if not isinstance(status, str):
            raise CompareError(f"{layout.record}: 'status' is {status!r}, not a string")
    else:
        status, error = "done", None
    if status == "done" and not metrics:
        # Only finished runs with metrics are compared; the others are listed as failed.
        where = f"{METRICS_FILE} missing" if evaluation is None else f"empty in {METRICS_FILE}"
        if evaluation is None and (path / BENCHMARK_FILE).is_file():
            where = f"a benchmark run: its metrics are per dataset, in {BENCHMARK_FILE}; compare it with --by-dataset"
        status, error = "failed", error or f"no metrics ({where})"

    seed = record.get("seed") if record is not None else None
    if seed is None:
        seed = overrides.get("seed")
    config = _read_yaml(layout.config) if layout.config.is_file() else None
    return Run(path=path, status=status, error=error, seed=seed, overrides=overrides,
               metrics=metrics, config=config if isinstance(config, dict) else None)


_ABSENT = object()


def _resolved(config: dict[str, Any], key: str) -> str | None:
    """The resolved value at a dotted override key (a config group's key gives its whole node);
    None where the config has no such key (``experiment=``: a choice that only selects others)."""
    node: Any = config
    for part in key.split("."):
        node = node.get(part, _ABSENT) if isinstance(node, dict) else _ABSENT
        if node is _ABSENT:
            return None
    return json.dumps(node, sort_keys=True, default=str)


def drop_inert_overrides(runs: list[Run]) -> None:
    """Removes the overrides that leave the resolved config the same in every run compared
    (``data.name=scifact`` on one run, the default scifact on the others), so that labels and
    seed groups reflect what actually differs. Needs every run's config.yaml; else a no-op."""
    if not runs or any(run.config is None for run in runs):
        return
    keys = {key for run in runs for key in run.overrides if key != "seed"}
    # A key the configs lack (experiment=) tells nothing of its effect: it is never inert.
    inert = {key for key in keys
             if None not in (values := {_resolved(run.config, key) for run in runs}) and len(values) == 1}
    for run in runs:
        run.overrides = {k: v for k, v in run.overrides.items() if k not in inert}


def load_runs(paths: list[Path]) -> list[Run]:
    runs = [load_run(path) for path in find_run_dirs(paths)]
    drop_inert_overrides(runs)
    return runs


def load_per_query(run: Run, metric: str) -> pd.Series:
    """Per-query scores of ``metric`` (index: query id, as a string) from ``metrics_per_query.tsv``.

    Raises CompareError naming the file when it is missing, malformed or lacks the metric.
    """
    path = run.layout.metrics_per_query
    if not path.is_file():
        raise CompareError(f"{path}: missing (needed for the paired tests)")
    try:
        table = pd.read_csv(path, sep="\t", dtype={"query_id": str}, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise CompareError(f"{path}: unreadable TSV ({err})") from None
    if "query_id" not in table.columns:
        raise CompareError(f"{path}: no 'query_id' column in the header")
    if metric not in table.columns:
        raise CompareError(f"{path}: no {metric!r} column")
    if table.empty:
        raise CompareError(f"{path}: no queries")
    duplicated = table["query_id"][table["query_id"].duplicated()]
    if not duplicated.empty:
        raise CompareError(f"{path}: query {duplicated.iloc[0]!r} appears more than once")
    scores = pd.to_numeric(table[metric], errors="coerce")
    bad = scores.isna()
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise CompareError(f"{path}:{row + 2}: {metric} is {table[metric].iloc[row]!r}, not a number")
    return pd.Series(scores.to_numpy(dtype=float), index=table["query_id"], name=metric)
