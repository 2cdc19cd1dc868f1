"""The run: load data and model, then train -> index -> evaluate, each stage timed and recorded."""

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from retrieval_lab import PROJECT_DIR
from retrieval_lab.config.schema import STAGES
from retrieval_lab.data.beir import load_beir
from retrieval_lab.atomic import atomic_write_json, atomic_write_text
from retrieval_lab.provenance import data_checksums, git_state, hardware, package_versions
from retrieval_lab.record import RECORD_FILE, RunRecord
from retrieval_lab.stages.index import build_index, load_index
from retrieval_lab.stages.teach import teach
from retrieval_lab.stages.train import train, training_data
from retrieval_lab.tracking import Tracker
from retrieval_lab.training.precision import PrecisionChoice, choose_precision, encoding_precision

log = logging.getLogger(__name__)


def run_pipeline(cfg: DictConfig, run_dir: Path, job: dict[str, Any] | None = None) -> dict[str, float]:
    """Runs the configured stages in their fixed order; returns the evaluation metrics and the
    last validation metrics of training (``val/<metric>``), where those stages ran.

    ``job`` describes how the run was launched (overrides, sweep); it goes into the run record.
    """
    stages = [s for s in STAGES if s in cfg.stages]
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    record = RunRecord(
        run_dir, task_name=cfg.task_name, seed=cfg.seed, stages_requested=stages, **(job or {}),
        git=git_state(PROJECT_DIR), versions=package_versions(), hardware=hardware(),
    )
    tracker: Tracker | None = None
    try:
        tracker = Tracker([instantiate(c) for c in (cfg.logger or {}).values() if c is not None])
        tracker.log_config(OmegaConf.to_container(cfg, resolve=True))
        results = _run_stages(cfg, stages, run_dir, record, tracker)
    except BaseException as err:
        record.fail(err)
        if tracker is not None:
            tracker.close("failed")
        raise
    record.finish()
    tracker.log_files(run_dir, ["run.trec", "metrics.json", "metrics_per_query.tsv", RECORD_FILE])
    tracker.close("success")
    return results


def _run_stages(
    cfg: DictConfig, stages: list[str], run_dir: Path, record: RunRecord, tracker: Tracker
) -> dict[str, float]:
    pl.seed_everything(cfg.seed, workers=True)
    evaluator = instantiate(cfg.evaluator)
    splits = []
    if "train" in stages:
        splits.append(cfg.data.train_split)
    if "evaluate" in stages:
        splits.append(evaluator.split)
    dataset = load_beir(cfg.data.root, cfg.data.name, splits, download=cfg.data.download)
    log.info("loaded %s: %d docs, %d queries, splits %s",
             dataset.name, len(dataset.corpus), len(dataset.queries), splits)
    record.update(data={"name": dataset.name, "path": str(dataset.path),
                        "sha256": data_checksums(dataset.path, splits)})
    model = instantiate(cfg.model)
    atomic_write_json(run_dir / "encoding.json", model.encoding_contract())
    precision = _choose_precisions(cfg, stages, model, record)

    results: dict[str, float] = {}
    step = 0
    if "train" in stages:
        # The training components, each built once from its config.
        objective = instantiate(cfg.objective)
        miner = instantiate(cfg.miner) if cfg.get("miner") is not None else None
        sampler = instantiate(cfg.sampler)
        negatives, mining = None, None
        if miner is not None:
            with record.stage("mine"):
                negatives, mining = miner.negatives(dataset, cfg.data.train_split, cfg.data.doc_template, model)
            record.update(mining=mining)
        datamodule = training_data(cfg, model, objective, dataset, miner, sampler, negatives)
        if cfg.get("teacher") or cfg.get("in_batch_teacher"):
            with record.stage("teach"):
                teachers = [instantiate(cfg[key]) if cfg.get(key) else None for key in ("teacher", "in_batch_teacher")]
                teaching = teach(teachers[0], getattr(objective, "needs", frozenset()), datamodule,
                                 cfg.data.train_split, cfg.data.doc_template, cfg.paths.cache_dir,
                                 in_batch_teacher=teachers[1])
            record.update(teacher=teaching)
        with record.stage("train"):
            trainer = train(cfg, model, objective, datamodule, miner, sampler, run_dir, tracker.loggers, precision)
        step = trainer.global_step
        if miner is not None and miner.history():
            record.update(mining={**mining, **miner.history()})
        _log_stage(tracker, record, "train", step)
        validation = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        record.update(validation=validation)
        results.update(validation)
        if not trainer.is_global_zero:
            log.info("training done on this rank; rank 0 indexes and evaluates")
            return results
    if "index" in stages:
        with record.stage("index"):
            index, corpus = build_index(
                model, dataset, instantiate(cfg.index), cfg.data.doc_template,
                Path(cfg.paths.cache_dir) / "embeddings", run_dir / "index",
                cfg.encode_batch_size, cfg.progress,
            )
        _log_stage(tracker, record, "index", step)
    elif cfg.load_index:
        with record.stage("load_index"):
            index, corpus = load_index(
                model, dataset, cfg.data.doc_template, Path(cfg.paths.cache_dir) / "embeddings",
                Path(cfg.load_index),
            )
    if "evaluate" in stages:
        with record.stage("evaluate"):
            metrics = evaluator(
                model, dataset, index, corpus, run_dir, cfg.encode_batch_size, cfg.progress
            )
        _log_stage(tracker, record, "evaluate", step)
        tracker.log_metrics({f"{evaluator.split}/{name}": value for name, value in metrics.items()}, step)
        record.update(metrics=metrics)
        results.update(metrics)
    return results


def _choose_precisions(cfg: DictConfig, stages: list[str], model: Any, record: RunRecord) -> PrecisionChoice | None:
    """The training precision (``trainer.precision``, ``auto`` decided by the hardware) and the
    encoding one, logged and recorded in run.json (``precision``) before any work; returns the
    training one (None without a train stage)."""
    accelerator = cfg.trainer.get("accelerator")
    chosen = {}
    if "train" in stages:
        chosen["train"] = choose_precision(cfg.trainer.get("precision"), accelerator)
    if isinstance(model, torch.nn.Module):  # BM25 has no weights to run in any precision
        chosen["encode"] = encoding_precision(accelerator)
    for stage, choice in chosen.items():
        log.info("%s precision: %s on %s (%s)", stage, choice.precision, choice.device, choice.reason)
    record.update(precision={stage: choice.as_record() for stage, choice in chosen.items()})
    return chosen.get("train")


def _log_stage(tracker: Tracker, record: RunRecord, name: str, step: int) -> None:
    entry = record.data["stages"][name]
    tracker.log_metrics({f"stage/{name}/seconds": entry["seconds"],
                         f"stage/{name}/peak_rss_mb": entry["peak_rss_mb"]}, step)
