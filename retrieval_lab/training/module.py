"""The LightningModule: one bi-encoder, one objective, AdamW with a step-wise schedule."""

from collections.abc import Callable, Iterable

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from retrieval_lab.errors import TrainingDiverged
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.objectives.base import Objective
from retrieval_lab.objectives.inputs import LossInputs
from retrieval_lab.training.cross_device import false_negative_mask, gather_documents

# Parameters that get no weight decay, as in BERT and sentence-transformers' fit().
NO_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias", "layer_norm.weight", "layer_norm.bias")


def loss_inputs(model: BiEncoder, batch: dict, gather: bool) -> LossInputs:
    """This rank's queries against the batch's documents (all ranks' when ``gather``), with what
    the data module attached for distillation (pair columns, teacher scores). A query-only batch
    (an objective that reads no documents trains on QueryDistillationDataModule) has no documents."""
    query = model(batch["query"], "query")
    if "doc" not in batch:  # a query-only batch (QueryDistillationDataModule)
        return LossInputs(query, None, torch.arange(query.shape[0], device=query.device),
                          teacher_query=batch["teacher_query"])
    docs, doc_keys = model(batch["doc"], "doc"), batch["doc_keys"]
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
    of all devices as negatives (``gather_across_devices``)."""

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        optimizer: Callable[[Iterable[dict]], Optimizer],
        scheduler: Callable[[Optimizer, int], LRScheduler] | None = None,
        gather_across_devices: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.gather_across_devices = gather_across_devices

    def on_fit_start(self) -> None:
        # Hugging Face models load in eval mode (dropout off) and Lightning leaves submodules'
        # modes as it finds them: train with dropout, as the recipes do.
        self.model.train()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = contrastive_loss(self.model, self.objective, batch, self.gather_across_devices)
        self.report_loss(loss, batch["query"]["input_ids"].shape[0])
        return loss

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
