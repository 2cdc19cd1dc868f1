"""Stage ``train``: fit the bi-encoder with Lightning, then export it."""

import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.data.datamodule import ContrastiveDataModule
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.models.export import export_model
from retrieval_lab.training.module import RetrieverModule

log = logging.getLogger(__name__)


def train(
    cfg: DictConfig, model: BiEncoder, dataset: BeirDataset, run_dir: Path, loggers: list[Logger]
) -> pl.Trainer:
    """Fits ``model`` in place, logging to ``loggers``; returns the trainer, whose
    ``is_global_zero`` tells whether this process is the one that exports the model and carries
    on with the later stages."""
    data = cfg.data
    datamodule = ContrastiveDataModule(
        dataset,
        model.tokenization,
        split=data.train_split,
        batch_size=data.batch_size,
        doc_template=data.doc_template,
        val_queries=data.val_queries,
        val_distractors=data.val_distractors,
        seed=cfg.seed,
        num_workers=data.num_workers,
    )
    log.info(
        "training on %d pairs from %s/%s; %d queries held out for validation",
        len(datamodule.pairs),
        dataset.name,
        data.train_split,
        data.val_queries,
    )
    module = RetrieverModule(
        model,
        instantiate(cfg.objective),
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler),
    )
    callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values() if c is not None]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    trainer.fit(module, datamodule=datamodule)
    if trainer.is_global_zero:
        path = export_model(model, run_dir / "model")
        log.info("exported the trained model to %s", path)
    return trainer
