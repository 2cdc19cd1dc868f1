"""The LightningModule: one bi-encoder, one objective, AdamW with a step-wise schedule."""

import contextlib
from collections.abc import Callable, Iterable
from typing import ContextManager

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from retrieval_lab.errors import TrainingDiverged
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.objectives.base import Objective
from retrieval_lab.objectives.inputs import LossInputs
from retrieval_lab.training.cross_device import false_negative_mask, gather_documents
from retrieval_lab.training.grad_cache import GradCache

# Parameters that get no weight decay, as in BERT and sentence-transformers' fit().
NO_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias", "layer_norm.weight", "layer_norm.bias")


def loss_inputs(model: BiEncoder, batch: dict, gather: bool) -> LossInputs:
    """This rank's queries against the batch's documents (all ranks' when ``gather``), with what
    the data module attached for distillation (pair columns, teacher scores). A query-only batch
    (an objective that reads no documents trains on QueryDistillationDataModule) has no documents."""
    query = model(batch["query"], "query")
    docs = model(batch["doc"], "doc") if "doc" in batch else None
    return batch_loss_inputs(query, docs, batch, gather)


def batch_loss_inputs(query: torch.Tensor, docs: torch.Tensor | None, batch: dict, gather: bool) -> LossInputs:
    """:func:`loss_inputs` from the batch's embeddings, however they were computed (at once, or
    chunk by chunk by GradCache)."""
    if docs is None:  # a query-only batch (QueryDistillationDataModule)
        return LossInputs(query, None, torch.arange(query.shape[0], device=query.device),
                          teacher_query=batch["teacher_query"])
    doc_keys = batch["doc_keys"]
    offset = 0
    if gather:
        docs, doc_keys, offset = gather_documents(docs, doc_keys)
    targets = offset + torch.arange(query.shape[0], device=query.device)
    mask = false_negative_mask(batch["query_positives"], doc_keys, targets)
    pair_columns = batch.get("pair_columns")
    teacher_batch = None
    if "in_batch_teacher_docs" in batch:
        teacher_docs = batch["in_batch_teacher_docs"]
        if gather:
            teacher_docs = gather_documents(teacher_docs, batch["doc_keys"])[0]
        teacher_batch = batch["in_batch_teacher_query"] @ teacher_docs.T
    return LossInputs(query, docs, targets, mask,
                      pair_columns=None if pair_columns is None else pair_columns + offset,
                      teacher_pairs=batch.get("teacher_pairs"), teacher_batch=teacher_batch,
                      teacher_query=batch.get("teacher_query"))


def contrastive_loss(model: BiEncoder, objective: Objective, batch: dict, gather: bool) -> torch.Tensor:
    return objective.compute(loss_inputs(model, batch, gather))


class RetrieverModule(pl.LightningModule):
    """Trains ``model`` with ``objective``; with several devices, every query sees the documents
    of all devices as negatives (``gather_across_devices``).

    With ``grad_cache`` each step is GradCache's (retrieval_lab/training/grad_cache.py), in
    Lightning's manual optimization: the module steps the optimizer and the schedule itself, and
    clips gradients by norm to ``gradient_clip_val`` (Lightning refuses its own clipping there)."""

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        optimizer: Callable[[Iterable[dict]], Optimizer],
        scheduler: Callable[[Optimizer, int], LRScheduler] | None = None,
        gather_across_devices: bool = True,
        grad_cache: GradCache | None = None,
        gradient_clip_val: float | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.gather_across_devices = gather_across_devices
        self.grad_cache = grad_cache
        self.gradient_clip_val = gradient_clip_val
        self.automatic_optimization = grad_cache is None

    def on_fit_start(self) -> None:
        # Hugging Face models load in eval mode (dropout off) and Lightning leaves submodules'
        # modes as it finds them: train with dropout, as the recipes do.
        self.model.train()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.grad_cache is not None:
            return self._grad_cache_step(batch)
        loss = contrastive_loss(self.model, self.objective, batch, self.gather_across_devices)
        self.report_loss(loss, batch["query"]["input_ids"].shape[0])
        return loss

    def _grad_cache_step(self, batch: dict) -> torch.Tensor:
        optimizer = self.optimizers()
        step = self.grad_cache.forward(
            self.model, self.objective, batch,
            lambda query, docs: batch_loss_inputs(query, docs, batch, self.gather_across_devices))
        self.report_loss(step.loss, batch["query"]["input_ids"].shape[0])
        optimizer.zero_grad()
        self.grad_cache.backward(self.model, step, self.manual_backward, self._no_sync)
        if self.gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")
        optimizer.step()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        return step.loss

    def _no_sync(self) -> ContextManager:
        """DDP's ``no_sync`` (gradients accumulate on each rank, unsynchronized), or nothing."""
        wrapper = self.trainer.strategy.model
        return wrapper.no_sync() if isinstance(wrapper, DistributedDataParallel) else contextlib.nullcontext()

    def report_loss(self, loss: torch.Tensor, size: int) -> None:
        """Stops training at a NaN or infinite loss, before its backward changes any weight (on
        every rank when one has it: the others would wait in the gradient all-reduce); else logs
        ``train/loss``, and each named term of the objective (a weighted sum's, Matryoshka's
        dimensions) as ``train/<name>``, over a batch of ``size`` queries."""
        diverged = not bool(torch.isfinite(loss.detach()))
        if self._trainer is not None and self.trainer.world_size > 1:
            diverged = self.trainer.strategy.reduce_boolean_decision(diverged, all=False)
        if diverged:
            raise TrainingDiverged(f"the training loss is {loss.item()} at step {self.global_step} "
                                   f"(epoch {self.current_epoch})")
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for name, value in getattr(self.objective, "last_terms", {}).items():
            self.log(f"train/{name}", value, batch_size=size)

    def configure_optimizers(self) -> dict:
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in named if not n.endswith(NO_DECAY)]},
            {"params": [p for n, p in named if n.endswith(NO_DECAY)], "weight_decay": 0.0},
        ]
        optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
