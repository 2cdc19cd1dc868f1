"""The sampler protocol: how training batches are formed, a ``_target_`` component of
``conf/sampler/`` built once per run. It says which pairs share a batch (:meth:`batch_sampler`:
none means plain shuffling) and how each pair draws its negatives from its query's pool
(:attr:`picker`)."""

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.sampling.negative_picking import NegativePicker, Strategy

BatchSamplerFactory = Callable[[list[Any]], Iterable[list[int]]]  # training pairs -> batches of indices


class Sampler:
    """Shuffled batches (the default, ``sampler=random``).

    Args: ``negatives``: how a pair's hard negatives are drawn for each batch (``top``, ``random``,
    ``balanced_margin``); ``margin_bins``: the score bins of ``balanced_margin``.

    ``groups_batches``: whether it decides which pairs share a batch (then a query-only objective,
    which trains on no pairs, refuses it); ``trainer_kwargs``: what the Lightning trainer must be
    given for it.
    """

    groups_batches: ClassVar[bool] = False
    trainer_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(self, negatives: Strategy = "random", margin_bins: int = 10) -> None:
        self.picker = NegativePicker(negatives, margin_bins)

    def batch_sampler(self, model: Any, dataset: BeirDataset, batch_size: int) -> BatchSamplerFactory | None:
        """The data module's batch sampler factory (given the training pairs), or None to shuffle."""
        return None
