"""The run's data order, owned by the framework so that a resumed run sees exactly the batches an
uninterrupted one would.

Every batch has a position, ``BatchKey(epoch, batch)``. The pairs in it depend only on the seed
and that position (each epoch's shuffle is a function of ``(seed, epoch)``: ShuffledBatches), and
so does everything drawn at random for it (which hard negatives each pair
carries: ``batch_rng``). Nothing depends on how many batches came before in this process, so a
run resumed at batch 17 of epoch 2 skips 17 batches and goes on, with any number of loader
workers (each worker of a plain ``random.Random`` in the data module would draw the same numbers).
"""

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from retrieval_lab.training.cross_device import world


@dataclass(frozen=True)
class BatchKey:
    epoch: int
    batch: int  # its place in this rank's batches of the epoch


def batch_rng(seed: int, key: BatchKey) -> random.Random:
    """The random draws of one batch (string seeds hash with sha512: the same in every process)."""
    return random.Random(f"{seed}/{key.epoch}/{key.batch}")


class EpochBatchSampler(Protocol):
    def set_epoch(self, epoch: int) -> None: ...
    def __iter__(self) -> Iterator[list[int]]: ...
    def __len__(self) -> int: ...


class ShuffledBatches:
    """Each epoch, a permutation of ``n`` items cut into batches of ``batch_size`` (the last may be
    smaller), which depends only on ``(seed, epoch)``.

    On one process it is the order that ``DataLoader(items, batch_size, shuffle=True,
    generator=torch.Generator().manual_seed(seed))`` gives in its epoch ``epoch`` (the data order
    of every run made before the framework owned it, which pinned figures depend on): that loader
    draws, per epoch, its workers' base seed, the permutation, and a second permutation of which
    RandomSampler keeps nothing; replaying those draws gives epoch ``epoch`` without the ones
    before (tests/test_batches.py checks it against a real DataLoader). With several ranks it is
    DistributedSampler's order: a permutation drawn from ``seed + epoch``, padded to a multiple of
    the world size by repeating its start, rank r taking every world_size-th item, so that every
    rank has as many batches."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> list[int]:
        if self.world_size == 1:
            generator = torch.Generator().manual_seed(self.seed)
            for _ in range(self.epoch + 1):
                torch.empty((), dtype=torch.int64).random_(generator=generator)  # the loader's base seed
                order = torch.randperm(self.n, generator=generator).tolist()
                torch.randperm(self.n, generator=generator)  # RandomSampler's remainder draw
            return order
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        padded = -(-self.n // self.world_size) * self.world_size
        order = (order * (1 + padded // max(self.n, 1)))[:padded]
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        order = self._indices()
        for start in range(0, len(order), self.batch_size):
            yield order[start:start + self.batch_size]

    def __len__(self) -> int:
        per_rank = -(-self.n // self.world_size)
        return -(-per_rank // self.batch_size)


class ResumableBatches:
    """``inner``'s batches, each index tagged with the batch's :class:`BatchKey`. After
    :meth:`resume_at`, the first batches of that epoch, which the run had already trained on, are
    skipped once."""

    def __init__(self, inner: EpochBatchSampler) -> None:
        self.inner = inner
        self.epoch = 0
        self._skip: tuple[int, int] | None = None  # (epoch, batches done)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    @property
    def sampler(self) -> "ResumableBatches":
        """Lightning sets the epoch of ``loader.sampler`` and ``loader.batch_sampler.sampler`` at
        every epoch's start (a resumed one's included), never ``loader.batch_sampler``'s own: this
        is how it reaches :meth:`set_epoch`."""
        return self

    def resume_at(self, epoch: int, done: int) -> None:
        self._skip = (epoch, done)

    def __iter__(self) -> Iterator[list[tuple[BatchKey, int]]]:
        skip = 0
        if self._skip is not None and self._skip[0] == self.epoch:
            skip, self._skip = self._skip[1], None
        for b, indices in enumerate(self.inner):
            if b >= skip:
                key = BatchKey(self.epoch, b)
                yield [(key, i) for i in indices]

    def __len__(self) -> int:
        return len(self.inner)  # Lightning counts the epoch's batches, done ones included


class _Tagged(Dataset):
    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items

    def __getitem__(self, tagged: tuple[BatchKey, int]) -> tuple[BatchKey, Any]:
        key, index = tagged
        return key, self.items[index]

    def __len__(self) -> int:
        return len(self.items)


class ResumableDataModule(pl.LightningDataModule):
    """A data module whose training batches follow the framework's data order. Subclasses give
    the items (:meth:`items`), how they are batched (:meth:`epoch_batches`, shuffled by default)
    and :meth:`collate` (the batch's items and its own random draws)."""

    def __init__(self, batch_size: int, seed: int, num_workers: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self._batches: ResumableBatches | None = None

    def items(self) -> Sequence[Any]:
        raise NotImplementedError

    def epoch_batches(self, items: Sequence[Any]) -> EpochBatchSampler:
        rank, size = world()
        return ShuffledBatches(len(items), self.batch_size, self.seed, rank, size)

    def collate(self, items: list[Any], rng: random.Random | None = None) -> dict[str, object]:
        """One batch of ``items`` with ``rng``'s draws (by default, those of the first batch)."""
        raise NotImplementedError

    def first_batch_rng(self) -> random.Random:
        return batch_rng(self.seed, BatchKey(0, 0))

    def resume_at(self, epoch: int, done: int) -> None:
        """The run resumes after ``done`` batches of ``epoch``."""
        self.batches.resume_at(epoch, done)

    @property
    def batches(self) -> ResumableBatches:
        if self._batches is None:  # built once: Lightning asks for the loader more than once
            self._batches = ResumableBatches(self.epoch_batches(self.items()))
        return self._batches

    def _collate_tagged(self, tagged: list[tuple[BatchKey, Any]]) -> dict[str, object]:
        key = tagged[0][0]
        return self.collate([item for _, item in tagged], batch_rng(self.seed, key))

    def train_dataloader(self) -> DataLoader:
        collate: Callable = self._collate_tagged
        # Its own generator: a loader's iterator draws its workers' base seed when it is created,
        # which would otherwise take a draw from the global RNG (dropout's) at each epoch start.
        return DataLoader(_Tagged(self.items()), batch_sampler=self.batches, collate_fn=collate,
                          num_workers=self.num_workers, generator=torch.Generator().manual_seed(self.seed))
