"""Several teachers as one (TAS-B's and Margin-MSE's teacher ensembles): each member's scores are
normalized per query, over the pairs of that query being scored, then combined with weights, so a
member on a larger scale (BM25, cross-encoder logits) does not drown the others."""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.teachers.teacher import PairIds, Teacher

Normalization = Literal["zscore", "minmax", "none"]


def normalize_per_query(scores: np.ndarray, query_ids: Sequence[str], how: Normalization) -> np.ndarray:
    """``zscore``: (s - mean) / std within each query; ``minmax``: into [0, 1] within each query; a
    query whose scores are all equal maps to 0."""
    if how == "none":
        return scores.astype(np.float32)
    if how not in ("zscore", "minmax"):
        raise ValueError(f"normalization must be zscore, minmax or none, got {how!r}")
    groups: dict[str, list[int]] = defaultdict(list)
    for position, query_id in enumerate(query_ids):
        groups[query_id].append(position)
    out = np.zeros(len(scores), dtype=np.float32)
    for positions in groups.values():
        values = scores[positions].astype(np.float64)
        if how == "zscore":
            spread = values.std()
            out[positions] = (values - values.mean()) / spread if spread > 0 else 0.0
        else:
            spread = values.max() - values.min()
            out[positions] = (values - values.min()) / spread if spread > 0 else 0.0
    return out


class EnsembleTeacher(Teacher):
    def __init__(self, teachers: Sequence[Teacher], weights: Sequence[float] | None = None,
                 normalization: Normalization = "zscore") -> None:
        if not teachers:
            raise ValueError("an ensemble needs at least one teacher")
        weights = list(weights) if weights is not None else [1.0] * len(teachers)
        if len(weights) != len(teachers):
            raise ValueError(f"{len(teachers)} teachers but {len(weights)} weights")
        self.teachers = list(teachers)
        self.weights = [float(w) for w in weights]
        self.normalization = normalization

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "ensemble", "normalization": self.normalization, "weights": self.weights,
                "members": [t.fingerprint() for t in self.teachers]}

    def score(self, dataset: BeirDataset, pairs: PairIds, doc_template: str) -> np.ndarray:
        query_ids = [q for q, _ in pairs]
        total = np.zeros(len(pairs), dtype=np.float32)
        for teacher, weight in zip(self.teachers, self.weights):
            total += weight * normalize_per_query(teacher.score(dataset, pairs, doc_template), query_ids,
                                                  self.normalization)
        return total
