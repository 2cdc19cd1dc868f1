"""Stage ``train``: fit the bi-encoder with Lightning, then export it."""

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.mining.miner import Miner
from retrieval_lab.mining.negatives_file import Negatives
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.models.cross_encoder import CrossEncoder
from retrieval_lab.models.export import export_model
from retrieval_lab.sampling import Sampler
from retrieval_lab.training.cross_encoder_datamodule import CrossEncoderDataModule
from retrieval_lab.training.cross_encoder_module import CrossEncoderModule
from retrieval_lab.training.datamodule import ContrastiveDataModule
from retrieval_lab.training.module import RetrieverModule
from retrieval_lab.training.precision import PrecisionChoice
from retrieval_lab.training.query_distillation import QueryDistillationDataModule

log = logging.getLogger(__name__)


def training_data(
    cfg: DictConfig, model: BiEncoder, objective: Any, dataset: BeirDataset, miner: Miner | None,
    sampler: Sampler, negatives: Negatives | None = None,
) -> ContrastiveDataModule | QueryDistillationDataModule:
    """The training pairs of ``cfg.data``, each with its query's hard ``negatives`` if given
    (``miner.per_pair`` of them per batch), batched as ``sampler`` says; for an objective that
    reads queries only, the training queries (and ``data.pseudo_queries`` corpus sentences) alone."""
    data = cfg.data
    if not getattr(objective, "reads_documents", True):
        datamodule = QueryDistillationDataModule(dataset, model.tokenization, data.train_split, data.batch_size,
                                                 cfg.seed, data.num_workers, data.get("pseudo_queries", 0))
        log.info("training on %d queries of %s/%s and %d corpus sentences as pseudo-queries",
                 datamodule.num_queries, dataset.name, data.train_split, len(datamodule.texts) - datamodule.num_queries)
        return datamodule
    kind, extra = ContrastiveDataModule, {}
    if isinstance(model, CrossEncoder):
        kind, extra = CrossEncoderDataModule, {"cross_encoder": model}
    datamodule = kind(
        dataset,
        getattr(model, "tokenization", None),
        split=data.train_split,
        batch_size=data.batch_size,
        doc_template=data.doc_template,
        val_queries=data.val_queries,
        val_distractors=data.val_distractors,
        seed=cfg.seed,
        num_workers=data.num_workers,
        negatives=negatives,
        negatives_per_pair=miner.per_pair if negatives is not None else 0,
        picker=sampler.picker,
        batch_sampler=sampler.batch_sampler(model, dataset, data.batch_size),
        **extra,
    )
    log.info(
        "training on %d pairs from %s/%s; %d queries held out for validation",
        len(datamodule.pairs),
        dataset.name,
        data.train_split,
        data.val_queries,
    )
    return datamodule


def train(
    cfg: DictConfig, model: BiEncoder, objective: Any, datamodule: ContrastiveDataModule, miner: Miner | None,
    sampler: Sampler, run_dir: Path, loggers: list[Logger], precision: PrecisionChoice,
) -> pl.Trainer:
    """Fits ``model`` in place on ``datamodule`` with ``objective`` in ``precision``, logging to
    ``loggers``, with the callbacks ``miner`` needs (a refresh); returns the trainer, whose
    ``is_global_zero`` tells whether this process is the one that exports the model and carries on
    with the later stages."""
    module = (CrossEncoderModule if isinstance(model, CrossEncoder) else RetrieverModule)(
        model,
        objective,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler),
    )
    callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values() if c is not None]
    if miner is not None:
        callbacks += miner.callbacks(datamodule.dataset, cfg.data.train_split, cfg.data.doc_template)
    trainer = instantiate(cfg.trainer, precision=precision.precision, callbacks=callbacks, logger=loggers or False,
                          **sampler.trainer_kwargs)
    trainer.fit(module, datamodule=datamodule)
    if trainer.is_global_zero:
        path = model.export(run_dir / "model") if isinstance(model, CrossEncoder) else export_model(model, run_dir / "model")
        log.info("exported the trained model to %s", path)
    return trainer
