"""The run: load data and model, then train -> index -> evaluate, each stage timed and recorded."""

import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from retrieval_lab.config.schema import STAGES
from retrieval_lab.data.beir import load_beir
from retrieval_lab.atomic import atomic_write_json, atomic_write_text
from retrieval_lab.record import RunRecord
from retrieval_lab.stages.index import build_index, load_index
from retrieval_lab.stages.train import train

log = logging.getLogger(__name__)


def run_pipeline(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """Runs the configured stages in their fixed order; returns the evaluation metrics (or {})."""
    stages = [s for s in STAGES if s in cfg.stages]
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
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
    model = instantiate(cfg.model)
    atomic_write_json(run_dir / "encoding.json", model.encoding_contract())

    record = RunRecord(run_dir)
    metrics: dict[str, float] = {}
    if "train" in stages:
        with record.stage("train"):
            is_global_zero = train(cfg, model, dataset, run_dir)
        if not is_global_zero:
            log.info("training done on this rank; rank 0 indexes and evaluates")
            return metrics
    if "index" in stages:
        with record.stage("index"):
            index, corpus = build_index(
                model, dataset, instantiate(cfg.index), cfg.data.doc_template,
                Path(cfg.paths.cache_dir) / "embeddings", run_dir / "index",
                cfg.encode_batch_size, cfg.progress,
            )
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
    return metrics
