"""A BM25 teacher (bm25s): lexical scores, e.g. as one member of an ensemble."""

from collections import defaultdict
from typing import Any

import numpy as np

from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.lexical import BM25Index
from retrieval_lab.teachers.teacher import PairIds, Teacher


class BM25Teacher(Teacher):
    """Args: :class:`BM25Index`'s (k1, b, stemmer, ...)."""

    def __init__(self, **bm25: Any) -> None:
        self.bm25 = bm25

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "bm25", **BM25Index(**self.bm25).params}

    def score(self, dataset: BeirDataset, pairs: PairIds, doc_template: str) -> np.ndarray:
        index = BM25Index(**self.bm25)
        index.build(list(dataset.corpus), [document_text(doc, doc_template) for doc in dataset.corpus.values()])
        by_query: dict[str, list[int]] = defaultdict(list)
        for position, (query_id, _) in enumerate(pairs):
            by_query[query_id].append(position)
        scores = np.zeros(len(pairs), dtype=np.float32)
        for query_id, positions in by_query.items():
            scores[positions] = index.score(dataset.queries[query_id], [pairs[p][1] for p in positions])
        return scores
