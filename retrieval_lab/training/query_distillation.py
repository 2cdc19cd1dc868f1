"""Batches for a query-only objective (query-tower embedding distillation): the texts of a
:class:`TrainingSet` made by :func:`~retrieval_lab.training.training_set.query_texts`, each with
its teacher embedding."""

import random
from collections.abc import Sequence

import numpy as np
import torch

from retrieval_lab.models.tokenization import Tokenization
from retrieval_lab.training.batches import ResumableDataModule
from retrieval_lab.training.training_set import TrainingSet


class QueryDistillationDataModule(ResumableDataModule):
    """``{"query": tokenized, "teacher_query": [B, dim]}`` batches of ``training_set.queries``,
    whose ``teacher_query`` the teach stage gave."""

    held_out = None  # no retrieval validation: there are no judgements to validate against

    def __init__(self, training_set: TrainingSet, tokenization: Tokenization, batch_size: int,
                 seed: int = 0, num_workers: int = 0) -> None:
        if training_set.teacher_query is None:
            raise ValueError("the training set has no teacher query embeddings: the teach stage gives them")
        super().__init__(batch_size, seed, num_workers)
        self.training_set = training_set
        self.tokenization = tokenization

    def items(self) -> Sequence[str]:
        return list(self.training_set.queries)

    def collate(self, query_ids: list[str], rng: random.Random | None = None) -> dict[str, object]:
        ts = self.training_set
        return {
            "query": self.tokenization([ts.queries[q] for q in query_ids], "query"),
            "teacher_query": torch.from_numpy(np.stack([ts.teacher_query[q] for q in query_ids])),
        }
