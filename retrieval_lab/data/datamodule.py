"""Training batches of (query, positive document) pairs from a BEIR split, with a held-out slice."""

import random
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.models.tokenization import Tokenization


@dataclass(frozen=True)
class Pair:
    query_id: str
    doc_id: str


@dataclass
class HeldOut:
    """Validation queries held out of training, searched against their positives plus distractors."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    corpus: dict[str, str]


class ContrastiveDataModule(pl.LightningDataModule):
    """Every (query, doc) judgement with grade > 0 in ``split`` is one training example.

    ``val_queries`` query ids (seeded) are held out of training entirely; their validation corpus
    is their judged documents plus ``val_distractors`` random documents, so a per-epoch retrieval
    check costs seconds rather than a full corpus encode. Batches carry what it takes to mask
    in-batch false negatives: columns holding another labelled positive of the same query.
    """

    def __init__(
        self,
        dataset: BeirDataset,
        tokenization: Tokenization,
        split: str,
        batch_size: int,
        doc_template: str,
        val_queries: int = 0,
        val_distractors: int = 1000,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.tokenization = tokenization
        self.batch_size = batch_size
        self.doc_template = doc_template
        self.seed = seed
        self.num_workers = num_workers
        qrels = dataset.qrels[split]
        self.doc_keys = {doc_id: i for i, doc_id in enumerate(dataset.corpus)}
        self.positives = {q: {d for d, g in docs.items() if g > 0} for q, docs in qrels.items()}
        query_ids = sorted(q for q, docs in self.positives.items() if docs)
        if val_queries >= len(query_ids):
            raise ValueError(
                f"data.val_queries={val_queries} leaves no training queries (split {split!r} "
                f"has {len(query_ids)})"
            )
        rng = random.Random(seed)
        held = set(rng.sample(query_ids, val_queries))
        self.pairs = [
            Pair(q, d) for q, docs in qrels.items() if q not in held for d, g in docs.items() if g > 0
        ]
        self.held_out = self._held_out(sorted(held), qrels, val_distractors, rng) if held else None

    def _held_out(self, held, qrels, n_distractors, rng) -> HeldOut:
        judged = {d for q in held for d in qrels[q]}
        others = [d for d in self.dataset.corpus if d not in judged]
        docs = sorted(judged) + rng.sample(others, min(n_distractors, len(others)))
        return HeldOut(
            queries={q: self.dataset.queries[q] for q in held},
            qrels={q: dict(qrels[q]) for q in held},
            corpus={d: document_text(self.dataset.corpus[d], self.doc_template) for d in docs},
        )

    def collate(self, pairs: list[Pair]) -> dict[str, object]:
        """Tokenized queries and documents, plus integer keys from which the model side builds
        the false-negative mask (also across devices): ``doc_keys`` [N], the corpus position of
        each document column, and ``query_positives`` [B, P], each query's positives, -1 padded."""
        queries = [self.dataset.queries[p.query_id] for p in pairs]
        docs = [document_text(self.dataset.corpus[p.doc_id], self.doc_template) for p in pairs]
        positives = [sorted(self.doc_keys[d] for d in self.positives[p.query_id]) for p in pairs]
        width = max(len(row) for row in positives)
        return {
            "query": self.tokenization(queries, "query"),
            "doc": self.tokenization(docs, "doc"),
            "doc_keys": torch.tensor([self.doc_keys[p.doc_id] for p in pairs]),
            "query_positives": torch.tensor([row + [-1] * (width - len(row)) for row in positives]),
        }

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.pairs,
            batch_size=self.batch_size,
            shuffle=True,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )
