"""Stage ``train``: fit the bi-encoder with Lightning, then export it."""

import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.errors import TrainingDiverged
from retrieval_lab.interruption import RunInterrupted, lightning_handles_sigterm
from retrieval_lab.mining.miner import Miner
from retrieval_lab.mining.negatives_file import Negatives
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.models.cross_encoder import CrossEncoder
from retrieval_lab.objectives.base import Objective
from retrieval_lab.sampling import Sampler
from retrieval_lab.training.checkpointing import AtomicCheckpointIO, ResumeCheckpoint
from retrieval_lab.training.cross_encoder_datamodule import CrossEncoderDataModule
from retrieval_lab.training.cross_encoder_module import CrossEncoderModule
from retrieval_lab.training.datamodule import ContrastiveDataModule
from retrieval_lab.training.grad_cache import GradCache
from retrieval_lab.training.module import RetrieverModule
from retrieval_lab.training.precision import PrecisionChoice
from retrieval_lab.training.query_distillation import QueryDistillationDataModule
from retrieval_lab.training.training_set import TrainingSet, judged_pairs, query_texts

log = logging.getLogger(__name__)


@dataclass
class Trained:
    """What the train stage gives back besides the model it fitted in place: the trainer (its
    ``is_global_zero`` says whether this process exports the model and carries on with the later
    stages; its metrics) and what happened to the negatives during training (a refresh's history,
    for the run record's ``mining`` entry)."""

    trainer: pl.Trainer
    mining_history: dict[str, Any]


def build_training_set(cfg: DictConfig, objective: Objective, dataset: BeirDataset, miner: Miner | None,
                       negatives: Negatives | None = None) -> TrainingSet:
    """The training pairs of ``cfg.data``, each query with its pool of hard ``negatives`` if given
    (``miner.per_pair`` of them per batch); for an objective that reads queries only, the training
    queries (and ``data.pseudo_queries`` corpus sentences) alone."""
    data = cfg.data
    if not objective.reads_documents:
        training_set = query_texts(dataset, data.train_split, data.doc_template, data.get("pseudo_queries", 0),
                                   cfg.seed)
        pseudo = training_set.pseudo_queries
        log.info("training on %d queries of %s/%s and %d corpus sentences as pseudo-queries",
                 len(training_set.queries) - pseudo, dataset.name, data.train_split, pseudo)
        return training_set
    training_set = judged_pairs(dataset, data.train_split, data.doc_template, data.val_queries,
                                data.val_distractors, cfg.seed)
    if negatives is not None:
        training_set = training_set.with_negatives(negatives, miner.per_pair, cfg.seed)
    log.info("training on %d pairs from %s/%s; %d queries held out for validation",
             len(training_set.pairs), dataset.name, data.train_split, data.val_queries)
    return training_set


def data_module(cfg: DictConfig, model: BiEncoder | CrossEncoder, training_set: TrainingSet,
                sampler: Sampler) -> pl.LightningDataModule:
    """Batches of ``training_set`` for ``model``, formed as ``sampler`` says."""
    data = cfg.data
    if not training_set.pairs:
        return QueryDistillationDataModule(training_set, model.tokenization, data.batch_size, cfg.seed,
                                           data.num_workers)
    batching = dict(batch_size=data.batch_size, seed=cfg.seed, num_workers=data.num_workers, picker=sampler.picker,
                    batch_sampler=sampler.batch_sampler(model, training_set.dataset, data.batch_size))
    if isinstance(model, CrossEncoder):
        return CrossEncoderDataModule(training_set, model, **batching)
    return ContrastiveDataModule(training_set, model.tokenization, **batching)


def train(
    cfg: DictConfig, model: BiEncoder | CrossEncoder, objective: Objective, training_set: TrainingSet,
    miner: Miner | None, sampler: Sampler, model_dir: Path, loggers: list[Logger], precision: PrecisionChoice,
    resume_from: Path | None = None,
) -> Trained:
    """Fits ``model`` in place on ``training_set`` with ``objective`` in ``precision``, logging to
    ``loggers``, with the callbacks ``miner`` needs (a refresh), and exports it to ``model_dir`` on
    rank 0. ``resume_from``: a checkpoint of this run to go on from (one written at the end of
    training restores the weights and trains no further)."""
    components = dict(optimizer=instantiate(cfg.optimizer), scheduler=instantiate(cfg.scheduler))
    grad_cache = GradCache.from_config(cfg.objective)
    trainer_kwargs = {}
    if isinstance(model, CrossEncoder):
        module = CrossEncoderModule(model, objective, **components)
    else:
        # Under GradCache the module steps the optimizer itself (manual optimization), and clips.
        clip = cfg.trainer.get("gradient_clip_val") if grad_cache is not None else None
        module = RetrieverModule(model, objective, **components, grad_cache=grad_cache, gradient_clip_val=clip)
        if grad_cache is not None:
            trainer_kwargs["gradient_clip_val"] = None
            log.info("GradCache: chunks of %d queries and documents, of batches of %d",
                     grad_cache.chunk_size, cfg.data.batch_size)
    datamodule = data_module(cfg, model, training_set, sampler)
    callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values() if c is not None]
    if miner is not None:
        callbacks += miner.callbacks(training_set.dataset, training_set.split, training_set.doc_template)
    # The data modules shard their batches over the ranks themselves (training.batches).
    trainer_kwargs = {"use_distributed_sampler": False, **sampler.trainer_kwargs, **trainer_kwargs}
    trainer = instantiate(cfg.trainer, precision=precision.precision, callbacks=callbacks, logger=loggers or False,
                          plugins=[AtomicCheckpointIO()], **trainer_kwargs)
    if resume_from is not None:
        log.info("resuming training from %s", resume_from)
    try:
        with lightning_handles_sigterm():
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    except SIGTERMException:
        raise RunInterrupted(signal.SIGTERM, f"stopped by SIGTERM during training at step {trainer.global_step}; "
                             f"{_checkpoint_kept(callbacks)}") from None
    except TrainingDiverged as err:
        raise TrainingDiverged(f"{err}; {_checkpoint_kept(callbacks)}") from None
    if trainer.is_global_zero:
        path = model.export(model_dir)
        log.info("exported the trained model to %s", path)
    return Trained(trainer, miner.history() if miner is not None else {})


def _checkpoint_kept(callbacks: list) -> str:
    checkpoint = next((c for c in callbacks if isinstance(c, ResumeCheckpoint)), None)
    if checkpoint is None or not checkpoint.path.exists():
        return "no checkpoint was saved"
    return f"resume from {checkpoint.path} (step {checkpoint.saved_step})"
