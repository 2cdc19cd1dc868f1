"""Training batches of (query, positive document) pairs from a BEIR split, with a held-out slice,
each pair optionally followed by the query's hard negatives."""

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.errors import DataError
from retrieval_lab.mining.negatives_file import Negatives
from retrieval_lab.models.tokenization import Tokenization
from retrieval_lab.sampling.negative_picking import NegativePicker


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

    With ``negatives`` (query id -> mined candidates), every pair carries ``negatives_per_pair``
    of its query's negatives, chosen afresh for each batch by ``picker``; a query with fewer
    candidates is topped up once with seeded random corpus documents that are not its positives,
    so every batch has the same number of document columns (the cross-device gather needs that)
    and every pair a batch can show is known before training (:meth:`scored_pairs`, which a
    teacher scores; ``teacher_scores`` then puts them in each batch as ``teacher_pairs``).
    :meth:`set_negatives` swaps in new candidates mid-run (ANCE-style refresh).
    ``batch_sampler`` (built from the training pairs) replaces plain shuffling (TAS-Balanced).
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
        negatives: Negatives | None = None,
        negatives_per_pair: int = 0,
        picker: NegativePicker | None = None,
        batch_sampler: Callable[[list["Pair"]], Iterable[list[int]]] | None = None,
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
        if negatives is not None and negatives_per_pair < 1:
            raise ValueError(f"negatives_per_pair must be >= 1 with negatives, got {negatives_per_pair}")
        self.negatives_per_pair = negatives_per_pair if negatives is not None else 0
        self.picker = picker or NegativePicker()
        self._rng = random.Random(seed)
        self._doc_ids = list(dataset.corpus)
        self.negatives: Negatives = {}
        self.topped_up = 0  # random documents added to short pools
        if negatives is not None:
            self.set_negatives(negatives)
        self.teacher_scores: dict[tuple[str, str], float] | None = None
        self.teacher_query: dict[str, np.ndarray] | None = None
        # An in-batch teacher's (query id -> embedding, doc id -> embedding): every column of a
        # batch gets a teacher score from these, as ``in_batch_teacher_query`` / ``_docs``.
        self.in_batch_teacher: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None
        self.batch_sampler_factory = batch_sampler
        self.batch_sampler: Iterable[list[int]] | None = None

    def set_negatives(self, negatives: Negatives) -> None:
        """Use ``negatives`` from the next batch on: labelled positives are dropped again (a user's
        file cannot smuggle one in), and each training query's pool is topped up to
        ``negatives_per_pair`` with random non-positive documents (score None)."""
        pools = {q: [(d, s) for d, s in cands if d not in self.positives.get(q, ())]
                 for q, cands in negatives.items()}
        self.topped_up = 0
        for query_id in sorted({p.query_id for p in self.pairs}):
            pool = pools.setdefault(query_id, [])
            taken = {d for d, _ in pool}
            while len(pool) < self.negatives_per_pair:
                doc_id = self._rng.choice(self._doc_ids)
                if doc_id not in self.positives[query_id] and doc_id not in taken:
                    pool.append((doc_id, None))
                    taken.add(doc_id)
                    self.topped_up += 1
        self.negatives = pools

    def scored_pairs(self) -> list[tuple[str, str]]:
        """Every (query id, doc id) a training batch can show for the query's own list: each
        pair's positive and every document of its query's pool."""
        pairs = {(p.query_id, p.doc_id) for p in self.pairs}
        pairs |= {(p.query_id, d) for p in self.pairs for d, _ in self.negatives.get(p.query_id, [])}
        return sorted(pairs)

    def _held_out(self, held, qrels, n_distractors, rng) -> HeldOut:
        judged = {d for q in held for d in qrels[q]}
        others = [d for d in self.dataset.corpus if d not in judged]
        docs = sorted(judged) + rng.sample(others, min(n_distractors, len(others)))
        return HeldOut(
            queries={q: self.dataset.queries[q] for q in held},
            qrels={q: dict(qrels[q]) for q in held},
            corpus={d: document_text(self.dataset.corpus[d], self.doc_template) for d in docs},
        )

    def hard_negatives(self, query_id: str) -> list[str]:
        """``negatives_per_pair`` negatives of one query for one batch."""
        return self.picker.pick(self.negatives[query_id], self.negatives_per_pair, self._rng)

    def _teacher_pairs(self, pairs: list[Pair], doc_ids: list[str]) -> torch.Tensor:
        size, k = len(pairs), self.negatives_per_pair
        rows = []
        for i, pair in enumerate(pairs):
            docs = [pair.doc_id, *doc_ids[size + i * k: size + (i + 1) * k]]
            try:
                rows.append([self.teacher_scores[(pair.query_id, d)] for d in docs])
            except KeyError as err:
                raise DataError(f"the teacher scores have no score for (query, doc) {err.args[0]}") from None
        return torch.tensor(rows, dtype=torch.float32)

    def collate(self, pairs: list[Pair]) -> dict[str, object]:
        """Tokenized queries and documents, plus integer keys from which the model side builds
        the false-negative mask (also across devices): ``doc_keys`` [N], the corpus position of
        each document column, and ``query_positives`` [B, P], each query's positives, -1 padded.
        Columns 0..B-1 hold the pairs' positives, then come the hard negatives, pair by pair."""
        queries = [self.dataset.queries[p.query_id] for p in pairs]
        doc_ids = [p.doc_id for p in pairs]
        if self.negatives_per_pair:
            doc_ids += [d for p in pairs for d in self.hard_negatives(p.query_id)]
        docs = [document_text(self.dataset.corpus[d], self.doc_template) for d in doc_ids]
        positives = [sorted(self.doc_keys[d] for d in self.positives[p.query_id]) for p in pairs]
        width = max(len(row) for row in positives)
        batch = {
            "query": self.tokenization(queries, "query"),
            "doc": self.tokenization(docs, "doc"),
            "doc_keys": torch.tensor([self.doc_keys[d] for d in doc_ids]),
            "query_positives": torch.tensor([row + [-1] * (width - len(row)) for row in positives]),
        }
        if self.negatives_per_pair:
            size, k = len(pairs), self.negatives_per_pair
            own = size + torch.arange(size * k).view(size, k)
            batch["pair_columns"] = torch.cat([torch.arange(size)[:, None], own], dim=1)
        if self.teacher_scores is not None:
            batch["teacher_pairs"] = self._teacher_pairs(pairs, doc_ids)
        if self.teacher_query is not None:
            batch["teacher_query"] = torch.from_numpy(np.stack([self.teacher_query[p.query_id] for p in pairs]))
        if self.in_batch_teacher is not None:
            queries, documents = self.in_batch_teacher
            batch["in_batch_teacher_query"] = torch.from_numpy(np.stack([queries[p.query_id] for p in pairs]))
            batch["in_batch_teacher_docs"] = torch.from_numpy(np.stack([documents[d] for d in doc_ids]))
        return batch

    def train_dataloader(self) -> DataLoader:
        if self.batch_sampler_factory is not None:
            if self.batch_sampler is None:  # Lightning asks for the loader more than once
                self.batch_sampler = self.batch_sampler_factory(self.pairs)
            return DataLoader(
                self.pairs,
                batch_sampler=self.batch_sampler,
                collate_fn=self.collate,
                num_workers=self.num_workers,
            )
        return DataLoader(
            self.pairs,
            batch_size=self.batch_size,
            shuffle=True,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )
