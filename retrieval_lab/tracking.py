"""Experiment tracking: one run's config, per-stage figures, metrics and files sent to the
configured Lightning loggers (csv, wandb, tensorboard), the same loggers the trainer draws its
training curves on, so a run's curves and final numbers land in one place."""

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from pytorch_lightning.loggers import Logger, WandbLogger

from retrieval_lab.run_layout import TRACKED_FILES

log = logging.getLogger(__name__)


def sweep_job() -> tuple[str, str] | None:
    """(sweep name, job name) when running as a job of a Hydra multirun, else None. The sweep
    name is the sweep directory's last two parts (``<date>/<time>_<task>``); the job name is its
    overrides (``seed=1,objective.temperature=0.02``), or its number when it has none."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    sweep_dir = Path(hydra_cfg.sweep.dir)
    return f"{sweep_dir.parent.name}/{sweep_dir.name}", hydra_cfg.job.override_dirname or str(hydra_cfg.job.num)


def wandb_logger(
    project: str = "retrieval_lab",
    save_dir: str = ".",
    offline: bool = True,
    tags: Iterable[str] = (),
    group: str | None = None,
    name: str | None = None,
    entity: str | None = None,
    job_type: str = "train",
) -> WandbLogger:
    """A Weights & Biases logger, offline unless told otherwise (``wandb sync`` uploads later).
    Each job of a sweep is one wandb run, grouped by its sweep and named by its overrides."""
    job = sweep_job()
    if job is not None:
        group = group or job[0]
        name = name or job[1]
    return WandbLogger(project=project, save_dir=save_dir, offline=offline, tags=list(tags),
                       group=group, name=name, entity=entity, job_type=job_type)


class Tracker:
    """Fans a run's records out to its loggers; ``close`` always finishes them, failed or not."""

    def __init__(self, loggers: list[Logger]) -> None:
        self.loggers = loggers

    def log_config(self, config: Mapping[str, Any]) -> None:
        for logger in self.loggers:
            logger.log_hyperparams(dict(config))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if metrics:
            for logger in self.loggers:
                logger.log_metrics(dict(metrics), step=step)
                logger.save()

    def log_files(self, run_dir: Path, names: Iterable[str] = TRACKED_FILES) -> None:
        """Attaches the run's result files (by default the TREC run, the metrics and the run
        record: ``run_layout.TRACKED_FILES``) where a logger keeps artifacts."""
        paths = [run_dir / name for name in names if (run_dir / name).is_file()]
        for logger in self.loggers:
            if isinstance(logger, WandbLogger) and paths:
                import wandb

                artifact = wandb.Artifact(f"run-{logger.experiment.id}", type="run")
                for path in paths:
                    artifact.add_file(str(path))
                logger.experiment.log_artifact(artifact)

    def close(self, status: str) -> None:
        """``status`` is Lightning's ("success" or "failed"); wandb runs get the matching exit code."""
        for logger in self.loggers:
            try:
                logger.finalize(status)
                if isinstance(logger, WandbLogger):
                    logger.experiment.finish(exit_code=0 if status == "success" else 1)
            except Exception:  # a logger failing to close must not hide the run's own outcome
                log.exception("could not close logger %s", type(logger).__name__)
