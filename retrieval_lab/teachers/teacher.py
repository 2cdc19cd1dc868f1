"""A teacher scores (query, document) pairs; distillation matches the student to those scores."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrieval_lab.data.beir import BeirDataset

PairIds = Sequence[tuple[str, str]]  # (query id, doc id)


class Teacher(ABC):
    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """What decides the teacher's scores (weights hash, parameters); part of the score cache key."""

    @abstractmethod
    def score(self, dataset: BeirDataset, pairs: PairIds, doc_template: str) -> np.ndarray:
        """One float32 score per pair, in order."""
