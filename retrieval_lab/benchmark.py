"""A benchmark: one model evaluated on several datasets in one process, the BEIR way.

Each dataset is evaluated with its own config, ``conf/data/<name>.yaml`` composed as
``data=<name>`` would compose it (its split, ``ignore_identical_ids``, document template, MTEB
task), with the run's ``data.root``, ``data.download`` and ``data.strict``. Its index and
evaluation files go to ``<run dir>/<name>/``, the same files as a single run; ``benchmark.json``
holds each dataset's metrics and their mean, in which a group of datasets (CQADupStack's 12
forums) counts once, as the mean of its members, as BEIR reports it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any, ClassVar

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from retrieval_lab import CONF_DIR
from retrieval_lab.config.rules import Param
from retrieval_lab.data.download import download_beir
from retrieval_lab.errors import DataError

log = logging.getLogger(__name__)

# The run's data settings that every dataset of a benchmark takes: where the data is, whether
# to fetch it, how strictly to read it.
SHARED_DATA_KEYS = ("root", "download", "strict")


def known_datasets() -> list[str]:
    """The dataset configs under conf/data/ (``cqadupstack/android`` for a nested one)."""
    data_dir = CONF_DIR / "data"
    return sorted(p.relative_to(data_dir).with_suffix("").as_posix() for p in data_dir.rglob("*.yaml")
                  if not p.name.startswith("_"))


def group_of(name: str) -> str | None:
    """The group a dataset is reported in (``cqadupstack`` for ``cqadupstack/android``)."""
    return name.split("/", 1)[0] if "/" in name else None


def _datasets_problem(value: Any, node: Any, run: Any) -> str | None:
    known = known_datasets()
    unknown = [d for d in value or () if d not in known]
    if unknown:
        return f"no dataset config conf/data/{unknown[0]}.yaml; known: {', '.join(known)}"
    if not value:
        return "no dataset given"
    if len(set(value)) < len(value):
        return f"a dataset is listed twice: {list(value)}"
    return None


@dataclass
class Benchmark:
    """Args:
        datasets: dataset config names (``conf/data/<name>.yaml``), evaluated in this order.
        skip_missing: a dataset not under ``data.root`` that cannot be downloaded (no network,
            or ``data.download=false``) is listed in ``benchmark.json``'s ``skipped`` and the
            others go on; false makes it the run's error.
    """

    datasets: Sequence[str]
    skip_missing: bool = True
    # Checked with the config, before any work (config/rules.py).
    rules: ClassVar[tuple[Param, ...]] = (Param("datasets", _datasets_problem),)

    def __post_init__(self) -> None:
        self.datasets = list(self.datasets)
        problem = _datasets_problem(self.datasets, None, None)
        if problem is not None:
            raise ValueError(f"datasets: {problem}")

    def dataset_config(self, name: str, run_cfg: DictConfig) -> DictConfig:
        """The run's config with ``data`` replaced by dataset ``name``'s (the run's root,
        download and strict kept), so that ``${data.*}`` in the evaluator resolves to its settings."""
        with _hydra_config_dir():
            data = compose(config_name="train", overrides=[f"data={name}"]).data
        for key in SHARED_DATA_KEYS:
            data[key] = run_cfg.data[key]  # resolved where the run resolved it
        return OmegaConf.merge(run_cfg, {"data": OmegaConf.to_container(data, resolve=False)})

    def available(self, data_cfg: DictConfig) -> str | None:
        """None when the dataset is under data.root (downloading it first where allowed and
        needed), else why not, where ``skip_missing`` lets the benchmark go on without it."""
        path = Path(data_cfg.root) / data_cfg.name
        if (path / "corpus.jsonl").is_file():
            return None
        if not data_cfg.download:
            reason = f"not found at {path} (data.download=false)"
        else:
            try:
                download_beir(data_cfg.name, data_cfg.root)
                return None
            except DataError as err:
                reason = str(err)
        if not self.skip_missing:
            raise DataError(f"benchmark dataset {data_cfg.name!r}: {reason}")
        return reason


@contextmanager
def _hydra_config_dir() -> Iterator[None]:
    """Hydra's compose needs the config directory known: inside ``rlab`` it is; elsewhere (a
    test calling the pipeline) it is set here for the call."""
    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        yield


def summarize(results: dict[str, dict[str, Any]], skipped: dict[str, str]) -> dict[str, Any]:
    """``benchmark.json``: ``results`` (dataset -> its metrics.json essentials) with the groups'
    means, and the mean over the datasets, each group counted once."""
    groups: dict[str, list[str]] = {}
    for name in results:
        if (group := group_of(name)) is not None:
            groups.setdefault(group, []).append(name)
    group_metrics = {g: _mean([results[n]["metrics"] for n in members]) for g, members in groups.items()}
    mean_over, rows = [], []
    for name in results:
        group = group_of(name)
        if group is None:
            mean_over.append(name)
            rows.append(results[name]["metrics"])
        elif group not in mean_over:
            mean_over.append(group)
            rows.append(group_metrics[group])
    return {
        "datasets": {name: {**entry, "group": group_of(name)} if group_of(name) else entry
                     for name, entry in results.items()},
        "groups": {g: {"datasets": members, "metrics": group_metrics[g]} for g, members in groups.items()},
        "mean": _mean(rows) if rows else {},
        "mean_over": mean_over,
        "skipped": skipped,
    }


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric that every row has."""
    shared = [m for m in rows[0] if all(m in row for row in rows)]
    return {m: fmean(row[m] for row in rows) for m in shared}
