"""The retriever protocol: query texts in, each query's ranked documents out.

The evaluate stage searches through it alone, whatever lies underneath: a vector index over a
model's embeddings (:class:`~retrieval_lab.retrievers.dense.DenseRetriever`) or a lexical index
over the texts (:class:`~retrieval_lab.lexical.BM25Index`). The index stage builds one and saves
it under the run's ``index/``; ``load_index`` loads it back.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrieval_lab.search import Run


@dataclass
class Retrieval:
    """What one query set retrieved, and what the index profile needs of it."""

    run: Run
    seconds: float  # the search itself (a dense retriever's query encoding is not counted)
    query_embeddings: np.ndarray | None = None  # None where nothing was embedded (lexical)


class Retriever(ABC):
    """``kind`` names the index underneath (``flat``, ``hnsw``, ``bm25``, ...)."""

    kind: str

    @abstractmethod
    def retrieve(self, queries: dict[str, str], k: int) -> Retrieval:
        """Up to ``k`` documents of each query (id -> text), best first."""

    @abstractmethod
    def profile(self, queries: dict[str, str], retrieval: Retrieval, k: int,
                latency_queries: int) -> dict[str, Any]:
        """What the index costs (size, build time, per-query latency, QPS of ``retrieval``) and,
        where it approximates, its recall against exact search."""
