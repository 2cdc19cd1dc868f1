"""Training groups for a cross-encoder: each (query, positive) pair with its query's hard negatives,
tokenized jointly as (query, document) inputs."""

import random
from typing import Any

import torch

from retrieval_lab.data.beir import document_text
from retrieval_lab.models.cross_encoder import CrossEncoder
from retrieval_lab.training.datamodule import ContrastiveDataModule
from retrieval_lab.training.training_set import Pair, TrainingSet


class CrossEncoderDataModule(ContrastiveDataModule):
    """The bi-encoder's pairs, negatives and sampling; only the batch differs: ``pairs``, the
    B x (1 + k) joint inputs (each pair's positive, then its negatives), and ``group`` = 1 + k."""

    def __init__(self, training_set: TrainingSet, cross_encoder: CrossEncoder, *args: Any, **kwargs: Any) -> None:
        if not training_set.negatives_per_pair:
            raise ValueError("a cross-encoder learns to tell a positive from negatives: choose a miner "
                             "(miner=bm25, dense, ...)")
        super().__init__(training_set, None, *args, **kwargs)
        self.cross_encoder = cross_encoder

    def collate(self, pairs: list[Pair], rng: random.Random | None = None) -> dict[str, object]:
        ts = self.training_set
        rng = rng or self.first_batch_rng()
        queries, docs = [], []
        for pair in pairs:
            for doc_id in [pair.doc_id, *self.hard_negatives(pair.query_id, rng)]:
                queries.append(ts.queries[pair.query_id])
                docs.append(document_text(ts.dataset.corpus[doc_id], ts.doc_template))
        return {"pairs": self.cross_encoder.tokenize(queries, docs),
                "group": torch.tensor(1 + ts.negatives_per_pair)}
