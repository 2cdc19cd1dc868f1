"""Training groups for a cross-encoder: each (query, positive) pair with its query's hard negatives,
tokenized jointly as (query, document) inputs."""

from typing import Any

import torch

from retrieval_lab.data.beir import document_text
from retrieval_lab.models.cross_encoder import CrossEncoder
from retrieval_lab.training.datamodule import ContrastiveDataModule, Pair


class CrossEncoderDataModule(ContrastiveDataModule):
    """The bi-encoder's pairs, negatives and sampling; only the batch differs: ``pairs``, the
    B x (1 + k) joint inputs (each pair's positive, then its negatives), and ``group`` = 1 + k."""

    def __init__(self, *args: Any, cross_encoder: CrossEncoder, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.negatives_per_pair:
            raise ValueError("a cross-encoder learns to tell a positive from negatives: choose a miner "
                             "(miner=bm25, dense, ...)")
        self.cross_encoder = cross_encoder

    def collate(self, pairs: list[Pair]) -> dict[str, object]:
        queries, docs = [], []
        for pair in pairs:
            for doc_id in [pair.doc_id, *self.hard_negatives(pair.query_id)]:
                queries.append(self.dataset.queries[pair.query_id])
                docs.append(document_text(self.dataset.corpus[doc_id], self.doc_template))
        return {"pairs": self.cross_encoder.tokenize(queries, docs),
                "group": torch.tensor(1 + self.negatives_per_pair)}
