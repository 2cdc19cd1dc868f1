"""Batches for a query-only objective (query-tower embedding distillation): the texts of a
:class:`TrainingSet` made by :func:`~retrieval_lab.training.training_set.query_texts`, each with
its teacher embedding."""

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from retrieval_lab.models.tokenization import Tokenization
from retrieval_lab.training.training_set import TrainingSet


class QueryDistillationDataModule(pl.LightningDataModule):
    """``{"query": tokenized, "teacher_query": [B, dim]}`` batches of ``training_set.queries``,
    whose ``teacher_query`` the teach stage gave."""

    held_out = None  # no retrieval validation: there are no judgements to validate against

    def __init__(self, training_set: TrainingSet, tokenization: Tokenization, batch_size: int,
                 seed: int = 0, num_workers: int = 0) -> None:
        super().__init__()
        if training_set.teacher_query is None:
            raise ValueError("the training set has no teacher query embeddings: the teach stage gives them")
        self.training_set = training_set
        self.tokenization = tokenization
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers

    def collate(self, query_ids: list[str]) -> dict[str, object]:
        ts = self.training_set
        return {
            "query": self.tokenization([ts.queries[q] for q in query_ids], "query"),
            "teacher_query": torch.from_numpy(np.stack([ts.teacher_query[q] for q in query_ids])),
        }

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            list(self.training_set.queries),
            batch_size=self.batch_size,
            shuffle=True,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )
