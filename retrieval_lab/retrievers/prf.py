"""Vector pseudo-relevance feedback (Vector-PRF; Li et al. 2021, "Pseudo Relevance Feedback with
Deep Language Models and Dense Retrievers: Successes and Pitfalls"): a dense retriever's query
embedding moves towards the embeddings of the top documents of its first search, and searches again.

The feedback documents' embeddings are the corpus embeddings the dense retriever already holds
(``CorpusEmbeddings``, memory-mapped from the embedding cache): nothing is encoded again.

With a hybrid, when the interpolation with the other retrievers happens is the question of Li et
al. 2022 ("To Interpolate or not to Interpolate: PRF, Dense and Sparse Retrievers"), whose best
was both before and after PRF:

- ``after``: each dense component's feedback is its own first run; its second run is then fused
  with the other components' runs;
- ``before``: the feedback is the fused run's top documents; the dense second run is the result;
- ``before_and_after``: the feedback is the fused run's top documents, and the dense second run
  is fused with the others again.
"""

import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

import numpy as np

from retrieval_lab.config.rules import Param, at_least
from retrieval_lab.evaluation.trec import trec_order
from retrieval_lab.retrievers.base import Retrieval, Retriever
from retrieval_lab.retrievers.dense import DenseRetriever
from retrieval_lab.retrievers.hybrid import CompositeRetrieval, HybridRetriever
from retrieval_lab.search import Run, search

Interpolate = Literal["before", "after", "before_and_after"]


class VectorPRF(ABC):
    """A second dense search with each query's embedding moved towards its top ``depth``
    feedback documents' (fewer where fewer were retrieved; a query with none keeps its own).

    Args:
        depth: how many top documents are the feedback.
        interpolate: with a hybrid retriever, where its fusion happens relative to the PRF
            (module docstring); a dense retriever alone ignores it.
    """

    method: ClassVar[str]
    rules: ClassVar[tuple[Param, ...]] = (Param("depth", at_least(1)),)

    def __init__(self, depth: int = 3, interpolate: Interpolate = "before_and_after") -> None:
        self.depth = depth
        self.interpolate = interpolate

    @abstractmethod
    def weights(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(alpha, beta) of each query, the weights of its embedding and of its feedback
        documents' mean, given how many feedback documents it has (``counts`` >= 1)."""

    def as_record(self) -> dict[str, Any]:
        return {"method": self.method, "depth": self.depth}

    def new_queries(self, queries: np.ndarray, feedback_sum: np.ndarray, counts: np.ndarray,
                    normalize: bool) -> np.ndarray:
        """alpha * q + beta * (the sum of a query's feedback embeddings / their count), re-normalized
        where the model normalizes its embeddings; a query without feedback is kept as it is."""
        has = counts > 0
        alpha, beta = self.weights(np.maximum(counts, 1))
        new = alpha[:, None] * queries + beta[:, None] * (feedback_sum / np.maximum(counts, 1)[:, None])
        if normalize:
            new /= np.maximum(np.linalg.norm(new, axis=1, keepdims=True), np.finfo(np.float32).tiny)
        return np.where(has[:, None], new, queries).astype(np.float32)

    def retrieve(self, retriever: Retriever, queries: dict[str, str], k: int,
                 ignore_identical_ids: bool = False, dataset: Any = None) -> CompositeRetrieval:
        """The second run, with the first one(s) as parts; ``ignore_identical_ids``: a query's
        own id is never its feedback (as it is never in its results). ``dataset`` is not read:
        the feedback is the corpus embeddings the retriever holds (ANCE-PRF reads its texts)."""
        if isinstance(retriever, DenseRetriever):
            first = retriever.retrieve(queries, k)
            second = self._second_round(retriever, first, first.run, k, ignore_identical_ids)
            return CompositeRetrieval(second.run, first.seconds + second.seconds, second.query_embeddings,
                                      parts={"first_round": first}, record={"prf": self.as_record()})
        if isinstance(retriever, HybridRetriever):
            return self._hybrid(retriever, queries, k, ignore_identical_ids)
        raise ValueError(f"evaluator.prf: vector PRF moves a dense retriever's query embeddings, and the "
                         f"{retriever.kind} index has none (use a vector index, or index=hybrid)")

    def _hybrid(self, hybrid: HybridRetriever, queries: dict[str, str], k: int,
                ignore_identical_ids: bool) -> CompositeRetrieval:
        dense = [name for name, c in hybrid.components.items() if isinstance(c, DenseRetriever)]
        if not dense:
            raise ValueError("evaluator.prf: vector PRF needs a dense component, and the hybrid's are "
                             f"{hybrid.record()['components']}")
        first = hybrid.retrieve(queries, k)
        second = {name: self._second_round(hybrid.components[name], first.parts[name],
                                           first.parts[name].run if self.interpolate == "after" else first.run,
                                           k, ignore_identical_ids)
                  for name in dense}
        start = time.perf_counter()
        if self.interpolate == "before":
            runs = {name: second[name].run for name in dense}
        else:
            runs = {name: (second[name] if name in second else part).run for name, part in first.parts.items()}
        run = hybrid.fusion.fuse(runs, k)
        seconds = first.seconds + sum(s.seconds for s in second.values()) + time.perf_counter() - start
        parts = {**first.parts, "fused": Retrieval(first.run, first.seconds),
                 **{f"{name}.prf": s for name, s in second.items()}}
        record = {**first.record, "prf": {**self.as_record(), "interpolate": self.interpolate, "components": dense}}
        return CompositeRetrieval(run, seconds, parts=parts, record=record)

    def _second_round(self, dense: DenseRetriever, first: Retrieval, feedback: Run, k: int,
                      ignore_identical_ids: bool) -> Retrieval:
        """``dense`` searched with the queries of ``first`` moved towards their top documents in
        ``feedback`` (a run over the same queries: its own, or a fused one)."""
        corpus = dense.corpus
        if corpus.embeddings is None:
            raise ValueError(f"evaluator.prf: the feedback documents' embeddings ({corpus.key}) are no longer "
                             "cached: build the index again (stages=[index,evaluate])")
        start = time.perf_counter()
        row_of = {doc_id: row for row, doc_id in enumerate(corpus.doc_ids)}
        query_ids = list(first.run)
        rows = np.full((len(query_ids), self.depth), -1, dtype=np.int64)
        for i, query_id in enumerate(query_ids):
            top = [d for d, _ in trec_order(feedback.get(query_id, {})) if not (ignore_identical_ids and d == query_id)]
            rows[i, : min(len(top), self.depth)] = [row_of[d] for d in top[: self.depth]]
        feedback_sum = np.zeros_like(first.query_embeddings, dtype=np.float64)
        for column in rows.T:  # one feedback rank at a time: memory stays queries x dim
            have = column >= 0
            feedback_sum[have] += corpus.embeddings[column[have]]
        new = self.new_queries(first.query_embeddings, feedback_sum, (rows >= 0).sum(axis=1), dense.model.normalize)
        run = search(dense.index, new, query_ids, corpus.doc_ids, k)
        return Retrieval(run, time.perf_counter() - start, new)


class Rocchio(VectorPRF):
    """Rocchio on embeddings: q' = alpha * q + beta * mean of the feedback documents' embeddings."""

    method: ClassVar[str] = "rocchio"

    def __init__(self, depth: int = 3, alpha: float = 1.0, beta: float = 0.5,
                 interpolate: Interpolate = "before_and_after") -> None:
        super().__init__(depth, interpolate)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def weights(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full(len(counts), self.alpha), np.full(len(counts), self.beta)

    def as_record(self) -> dict[str, Any]:
        return {**super().as_record(), "alpha": self.alpha, "beta": self.beta}


class AveragePRF(VectorPRF):
    """Average: q' = the mean of q and its n feedback documents' embeddings, Rocchio with
    alpha = 1 / (n + 1) and beta = n / (n + 1)."""

    method: ClassVar[str] = "average"

    def weights(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return 1 / (counts + 1), counts / (counts + 1)
