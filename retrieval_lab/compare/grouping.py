"""Seed groups and labels.

Runs whose overrides are the same except ``seed=`` and whose seeds are all different are one
group (seed replicates, summarised by mean and sample std). Runs with identical overrides and the
same (or an unknown) seed are not replicates of each other: each is then a group of its own.

A label is what tells a run (or group) apart from the others compared: the overrides whose value
differs across them (``seed`` left out for groups), else the directory name.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval_lab.compare.runs import Run

SEED = "seed"


@dataclass
class Group:
    runs: list[Run]
    label: str = ""

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def overrides(self) -> dict[str, str]:
        """The overrides shared by every run of the group, seed left out."""
        return {k: v for k, v in self.runs[0].overrides.items() if k != SEED}

    def values(self, metric: str) -> np.ndarray:
        return np.array([run.metrics.get(metric, np.nan) for run in self.runs], dtype=float)

    def mean(self, metric: str) -> float:
        values = self.values(metric)
        return float(np.mean(values)) if not np.isnan(values).any() else np.nan

    def std(self, metric: str) -> float:
        """Sample standard deviation (ddof=1) across the seeds; NaN for a single run."""
        values = self.values(metric)
        return float(np.std(values, ddof=1)) if self.n > 1 and not np.isnan(values).any() else np.nan


def distinguishing_keys(overrides: list[dict[str, str]]) -> list[str]:
    """Override keys whose value (or presence) differs among ``overrides``, in first-seen order."""
    keys = list(dict.fromkeys(key for o in overrides for key in o))
    return [key for key in keys if len({o.get(key) for o in overrides}) > 1]


def describe(overrides: dict[str, str], keys: list[str]) -> str:
    return " ".join(f"{key}={overrides[key]}" for key in keys if key in overrides)


def _unique(labels: list[str], fallbacks: list[str]) -> list[str]:
    counts = Counter(labels)
    return [f"{label} [{fallback}]" if counts[label] > 1 else label
            for label, fallback in zip(labels, fallbacks)]


def _relative_names(paths: list[Path]) -> list[str]:
    """Each path relative to the common parent of all (``0``, ``sweepA/3``), else its name."""
    if len(paths) == 1:
        return [paths[0].name]
    root = Path(os.path.commonpath(paths))
    return [str(p.relative_to(root)) if p != root else p.name for p in paths]


def run_labels(runs: list[Run]) -> dict[Path, str]:
    """Label of each run among ``runs``: its distinguishing overrides (seed included)."""
    keys = distinguishing_keys([run.overrides for run in runs])
    names = _relative_names([run.path for run in runs])
    labels = [describe(run.overrides, keys) or name for run, name in zip(runs, names)]
    return dict(zip((run.path for run in runs), _unique(labels, names)))


def group_runs(runs: list[Run]) -> list[Group]:
    """Seed groups of ``runs`` (in first-seen order), labelled."""
    buckets: dict[tuple, list[Run]] = {}
    for run in runs:
        key = tuple(sorted((k, v) for k, v in run.overrides.items() if k != SEED))
        buckets.setdefault(key, []).append(run)
    groups = []
    for members in buckets.values():
        seeds = [run.seed for run in members]
        if None not in seeds and len({str(s) for s in seeds}) == len(seeds):
            groups.append(Group(members))
        else:
            groups.extend(Group([run]) for run in members)

    keys = distinguishing_keys([g.overrides for g in groups])
    names = _relative_names([Path(os.path.commonpath([r.path for r in g.runs])) for g in groups])
    labels = [describe(g.overrides, keys) or name for g, name in zip(groups, names)]
    for group, label in zip(groups, _unique(labels, names)):
        group.label = label
    return groups
