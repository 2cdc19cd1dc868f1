"""MTEB results files as reference rows of ``rlab-compare --by-dataset``.

An MTEB results file is the JSON of ``mteb.TaskResult`` (MTEB >= 1.11)::

    {"task_name": "SciFact", "dataset_revision": "...", "mteb_version": "...", "evaluation_time": ...,
     "scores": {"test": [{"ndcg_at_10": 0.645, "recall_at_100": 0.925, ..., "main_score": 0.645,
                          "hf_subset": "default", "languages": ["eng-Latn"]}]}}

Which of our datasets an MTEB task is, and which split counts, is read from the data configs:
``conf/data/**/<name>.yaml`` with ``mteb: {task_name: SciFact, revision: ..., split: test}``
(:func:`task_configs`), so the map is written once, in the configs. A reference is a file (one
dataset) or a directory of them (``results/<model>/<revision>/``, one file per task; a model
directory with a single revision also works); it is labelled by the model's name
(``model_meta.json`` beside the files), else by the model directory's name.

Metric names: MTEB's ``ndcg_at_10`` is ranx's ``ndcg@10``. A reference has no per-query scores,
so it is never tested for significance.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from retrieval_lab.compare.errors import CompareError
from retrieval_lab.compare.runs import _read_json

MODEL_META = "model_meta.json"  # MTEB writes it beside a model revision's task files
DEFAULT_SUBSET = "default"
# Directory names that say nothing of the model: an MTEB revision directory (a commit hash or
# MTEB's placeholder), an rlab run's mteb/ directory.
_ANONYMOUS_DIR = re.compile(r"[0-9a-f]{40}|no_revision_available|mteb")
_MTEB_SCORE = re.compile(r"(?P<measure>[a-z][a-z0-9_]*?)_at_(?P<k>\d+)")


@dataclass(frozen=True)
class TaskConfig:
    """One data config's ``mteb`` block: our dataset ``name`` is the MTEB task ``task_name``."""

    name: str
    task_name: str
    split: str
    revision: str | None
    config: Path  # the data config it was read from


@dataclass
class Reference:
    """A reference row: metrics (ranx names) per dataset, from MTEB results files."""

    label: str
    path: Path
    datasets: dict[str, dict[str, float]] = field(default_factory=dict)  # dataset -> metric -> value
    files: dict[str, Path] = field(default_factory=dict)  # dataset -> the file it came from
    warnings: list[str] = field(default_factory=list)


def ranx_metric(score: str) -> str | None:
    """MTEB's ``ndcg_at_10`` -> ranx's ``ndcg@10``; None for a score with no cut-off (``main_score``)."""
    match = _MTEB_SCORE.fullmatch(score)
    return f"{match['measure']}@{match['k']}" if match else None


def _task_block(value: Any, path: Path, name: Any) -> TaskConfig:
    if not isinstance(value, dict) or not isinstance(value.get("task_name"), str):
        raise CompareError(f"{path}: 'mteb' must be {{task_name: ..., revision: ..., split: ...}}, got {value!r}")
    split = value.get("split", "test")
    revision = value.get("revision")
    if not isinstance(split, str) or not (revision is None or isinstance(revision, str)):
        raise CompareError(f"{path}: 'mteb': split must be a string and revision a string or null")
    return TaskConfig(name=name, task_name=value["task_name"], split=split, revision=revision, config=path)


def task_configs(conf_dir: Path | None = None) -> dict[str, list[TaskConfig]]:
    """MTEB task name -> the data configs that name it (normally one), from
    ``<conf_dir>/data/**/*.yaml`` (default: the project's ``retrieval_lab.CONF_DIR``).

    A config's dataset name is its ``name`` key, else its path under ``data/`` without ``.yaml``
    (``cqadupstack/android``). Configs without an ``mteb`` block (or with ``mteb: null``) map nothing.
    """
    if conf_dir is None:
        from retrieval_lab import CONF_DIR  # read at call time, so tests can point it elsewhere
        conf_dir = CONF_DIR
    data_dir = Path(conf_dir) / "data"
    tasks: dict[str, list[TaskConfig]] = {}
    for path in sorted(data_dir.rglob("*.yaml")):
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise CompareError(f"{path}: unreadable YAML ({err})") from None
        if not isinstance(config, dict) or config.get("mteb") is None:
            continue
        name = config.get("name")
        if not isinstance(name, str) or "${" in name:
            name = path.relative_to(data_dir).with_suffix("").as_posix()
        task = _task_block(config["mteb"], path, name)
        tasks.setdefault(task.task_name, []).append(task)
    return tasks


def task_map(tasks: dict[str, str | dict[str, Any]], where: Path = Path("<mapping>")) -> dict[str, list[TaskConfig]]:
    """The same map from a small dict, ``{task_name: name}`` or ``{task_name: {name, split, revision}}``
    (tests, and callers that have the configs at hand)."""
    out: dict[str, list[TaskConfig]] = {}
    for task_name, value in tasks.items():
        spec = {"name": value} if isinstance(value, str) else dict(value)
        out[task_name] = [TaskConfig(name=spec["name"], task_name=task_name, split=spec.get("split", "test"),
                                     revision=spec.get("revision"), config=where)]
    return out


def _one_config(task_name: str, tasks: dict[str, list[TaskConfig]], path: Path) -> TaskConfig | None:
    configs = tasks.get(task_name, [])
    if len(configs) > 1:
        names = ", ".join(f"{c.name} ({c.config})" for c in configs)
        raise CompareError(f"{path}: MTEB task {task_name!r} is named by more than one data config: {names}")
    return configs[0] if configs else None


def _scores_entry(data: dict[str, Any], path: Path, split: str) -> dict[str, Any]:
    scores = data["scores"]
    if split not in scores:
        have = ", ".join(map(repr, scores)) or "none"
        raise CompareError(f"{path}: no scores for split {split!r} (the data config's mteb.split); it has {have}")
    entries = scores[split]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries) or not entries:
        raise CompareError(f"{path}: scores.{split} must be a non-empty list of objects")
    if len(entries) == 1:
        return entries[0]
    default = [e for e in entries if e.get("hf_subset") == DEFAULT_SUBSET]
    if len(default) != 1:
        subsets = ", ".join(repr(e.get("hf_subset")) for e in entries)
        raise CompareError(f"{path}: scores.{split} has several subsets ({subsets}) and not one "
                           f"{DEFAULT_SUBSET!r}: which one is the dataset is not known")
    return default[0]


def read_result_file(path: Path, tasks: dict[str, list[TaskConfig]],
                     unmapped_ok: bool = False) -> tuple[TaskConfig, dict[str, float], list[str]] | None:
    """(the data config, the metrics in ranx names, warnings) of one MTEB results file.

    Raises CompareError naming the file when it is not an MTEB results file, or when no data config
    maps its task (with ``unmapped_ok``: returns None instead).
    """
    data = _read_json(path)
    if not isinstance(data.get("task_name"), str) or not isinstance(data.get("scores"), dict):
        old = " (this looks like MTEB < 1.11's format: load it with mteb.TaskResult.from_disk and save " \
              "it again)" if "mteb_dataset_name" in data else ""
        raise CompareError(f"{path}: not an MTEB results file (needs 'task_name' and 'scores', "
                           f"MTEB >= 1.11's format){old}")
    task_name = data["task_name"]
    config = _one_config(task_name, tasks, path)
    if config is None:
        if unmapped_ok:
            return None
        raise CompareError(f"{path}: MTEB task {task_name!r} is mapped by no data config "
                           f"(none of conf/data/**/*.yaml has mteb.task_name: {task_name})")
    entry = _scores_entry(data, path, config.split)
    metrics = {}
    for score, value in entry.items():
        metric = ranx_metric(score)
        if metric is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise CompareError(f"{path}: score {score!r} is {value!r}, not a number")
        metrics[metric] = float(value)
    if not metrics:
        raise CompareError(f"{path}: scores.{config.split} holds no metric at a cut-off (ndcg_at_10, ...)")
    warnings = []
    revision = data.get("dataset_revision")
    if config.revision and revision and revision != config.revision:
        warnings.append(f"{path}: scored on dataset revision {revision}, not {config.revision} "
                        f"({config.config}): the figures may not be comparable")
    return config, metrics, warnings


def _label(path: Path) -> str:
    folder = path if path.is_dir() else path.parent
    meta = folder / MODEL_META
    if meta.is_file():
        name = _read_json(meta).get("name")
        if isinstance(name, str) and name:
            return name
    if path.is_dir() or _ANONYMOUS_DIR.fullmatch(folder.name):
        while _ANONYMOUS_DIR.fullmatch(folder.name) and folder.parent != folder:
            folder = folder.parent
        return folder.name
    return path.stem


def _result_files(path: Path) -> list[Path]:
    files = sorted(p for p in path.glob("*.json") if p.name != MODEL_META)
    if files:
        return files
    revisions = sorted(d for d in path.iterdir() if d.is_dir() and any(
        p.name != MODEL_META for p in d.glob("*.json")))
    if len(revisions) == 1:
        return _result_files(revisions[0])
    if revisions:
        raise CompareError(f"{path}: results of {len(revisions)} revisions ({', '.join(d.name for d in revisions)}); "
                           "give one revision's directory")
    raise CompareError(f"{path}: no MTEB results file (*.json) in it")


def load_reference(path: Path, tasks: dict[str, list[TaskConfig]]) -> Reference:
    """A reference row from an MTEB results file or a directory of them.

    In a directory, tasks that no data config maps (MTEB's classification, STS, ... tasks) are
    left out with one warning; it is an error when none is mapped, or for a single file.
    """
    if not path.exists():
        raise CompareError(f"--reference {path}: no such file or directory")
    files = _result_files(path) if path.is_dir() else [path]
    reference = Reference(label=_label(path), path=path)
    unmapped = []
    for file in files:
        read = read_result_file(file, tasks, unmapped_ok=path.is_dir())
        if read is None:
            unmapped.append(file.stem)
            continue
        config, metrics, warnings = read
        if config.name in reference.datasets:
            raise CompareError(f"{file}: a second result for {config.name} (task {config.task_name}), "
                               f"after {reference.files[config.name]}")
        reference.datasets[config.name] = metrics
        reference.files[config.name] = file
        reference.warnings += warnings
    if not reference.datasets:
        raise CompareError(f"{path}: none of its {len(files)} MTEB results files is of a task that a data "
                           f"config maps (conf/data/**/*.yaml, mteb.task_name): {', '.join(unmapped)}")
    if unmapped:
        reference.warnings.append(f"{path}: left out {len(unmapped)} MTEB task(s) that no data config maps: "
                                  + ", ".join(unmapped))
    return reference
