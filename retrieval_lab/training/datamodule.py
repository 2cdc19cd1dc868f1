"""Training batches of a :class:`TrainingSet`'s (query, positive document) pairs, each pair
optionally followed by hard negatives drawn from its query's pool."""

import random
from collections.abc import Callable, Sequence

import numpy as np
import torch

from retrieval_lab.data.beir import document_text
from retrieval_lab.errors import DataError
from retrieval_lab.models.tokenization import Tokenization
from retrieval_lab.sampling.negative_picking import NegativePicker
from retrieval_lab.training.batches import EpochBatchSampler, ResumableDataModule
from retrieval_lab.training.training_set import HeldOut, Pair, TrainingSet


class ContrastiveDataModule(ResumableDataModule):
    """Batches of ``training_set``'s pairs: queries, documents, and what it takes to mask in-batch
    false negatives (columns holding another labelled positive of the same query).

    With negative pools, every pair carries ``negatives_per_pair`` of its query's negatives, chosen
    afresh for each batch by ``picker`` (with the batch's own draws, training.batches); every batch has the same number of
    document columns (the cross-device gather needs that). What the teachers gave goes into each
    batch: ``teacher_pairs`` (the scores of each pair's own list), ``teacher_query``,
    ``in_batch_teacher_query`` / ``_docs``. ``batch_sampler`` (built from the training pairs)
    replaces plain shuffling (TAS-Balanced). :meth:`use` swaps in a new training set mid-run
    (ANCE-style refresh).
    """

    def __init__(
        self,
        training_set: TrainingSet,
        tokenization: Tokenization,
        batch_size: int,
        seed: int = 0,
        num_workers: int = 0,
        picker: NegativePicker | None = None,
        batch_sampler: Callable[[list[Pair]], EpochBatchSampler] | None = None,
    ) -> None:
        super().__init__(batch_size, seed, num_workers)
        self.training_set = training_set
        self.tokenization = tokenization
        self.picker = picker or NegativePicker()
        self.doc_keys = {doc_id: i for i, doc_id in enumerate(training_set.dataset.corpus)}
        self.batch_sampler_factory = batch_sampler

    @property
    def held_out(self) -> HeldOut | None:
        return self.training_set.held_out

    def use(self, training_set: TrainingSet) -> None:
        """Batches come from ``training_set`` from the next one on (same pairs, new pools)."""
        if training_set.pairs != self.training_set.pairs:
            raise ValueError("a refreshed training set must keep the training pairs")
        self.training_set = training_set

    def items(self) -> Sequence[Pair]:
        return self.training_set.pairs

    def epoch_batches(self, pairs: Sequence[Pair]) -> EpochBatchSampler:
        if self.batch_sampler_factory is None:
            return super().epoch_batches(pairs)
        return self.batch_sampler_factory(list(pairs))

    def hard_negatives(self, query_id: str, rng: random.Random) -> list[str]:
        """``negatives_per_pair`` negatives of one query for one batch."""
        ts = self.training_set
        return self.picker.pick(ts.negatives[query_id], ts.negatives_per_pair, rng)

    def _teacher_pairs(self, pairs: list[Pair], doc_ids: list[str]) -> torch.Tensor:
        size, k = len(pairs), self.training_set.negatives_per_pair
        scores = self.training_set.teacher_scores
        rows = []
        for i, pair in enumerate(pairs):
            docs = [pair.doc_id, *doc_ids[size + i * k: size + (i + 1) * k]]
            try:
                rows.append([scores[(pair.query_id, d)] for d in docs])
            except KeyError as err:
                raise DataError(f"the teacher scores have no score for (query, doc) {err.args[0]}") from None
        return torch.tensor(rows, dtype=torch.float32)

    def collate(self, pairs: list[Pair], rng: random.Random | None = None) -> dict[str, object]:
        """Tokenized queries and documents, plus integer keys from which the model side builds
        the false-negative mask (also across devices): ``doc_keys`` [N], the corpus position of
        each document column, and ``query_positives`` [B, P], each query's positives, -1 padded.
        Columns 0..B-1 hold the pairs' positives, then come the hard negatives, pair by pair."""
        ts = self.training_set
        rng = rng or self.first_batch_rng()
        queries = [ts.queries[p.query_id] for p in pairs]
        doc_ids = [p.doc_id for p in pairs]
        k = ts.negatives_per_pair
        if k:
            doc_ids += [d for p in pairs for d in self.hard_negatives(p.query_id, rng)]
        docs = [document_text(ts.dataset.corpus[d], ts.doc_template) for d in doc_ids]
        positives = [sorted(self.doc_keys[d] for d in ts.positives[p.query_id]) for p in pairs]
        width = max(len(row) for row in positives)
        batch = {
            "query": self.tokenization(queries, "query"),
            "doc": self.tokenization(docs, "doc"),
            "doc_keys": torch.tensor([self.doc_keys[d] for d in doc_ids]),
            "query_positives": torch.tensor([row + [-1] * (width - len(row)) for row in positives]),
        }
        if k:
            size = len(pairs)
            own = size + torch.arange(size * k).view(size, k)
            batch["pair_columns"] = torch.cat([torch.arange(size)[:, None], own], dim=1)
        if ts.teacher_scores is not None:
            batch["teacher_pairs"] = self._teacher_pairs(pairs, doc_ids)
        if ts.teacher_query is not None:
            batch["teacher_query"] = torch.from_numpy(np.stack([ts.teacher_query[p.query_id] for p in pairs]))
        if ts.in_batch_teacher is not None:
            teacher = ts.in_batch_teacher
            batch["in_batch_teacher_query"] = torch.from_numpy(np.stack([teacher.queries[p.query_id] for p in pairs]))
            batch["in_batch_teacher_docs"] = torch.from_numpy(np.stack([teacher.documents[d] for d in doc_ids]))
        return batch
