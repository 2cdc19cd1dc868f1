"""Stage ``evaluate``: search the index with the split's queries, write the run, score it."""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from retrieval_lab.atomic import atomic_write_json, atomic_write_text
from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.embedding_cache import CorpusEmbeddings
from retrieval_lab.encoding import encode_texts
from retrieval_lab.evaluation import DEFAULT_METRICS, Run, evaluate, write_run
from retrieval_lab.evaluation.rerank import rerank
from retrieval_lab.index.base import Index
from retrieval_lab.index_profile import profile_bm25_index, profile_index
from retrieval_lab.lexical import BM25Index
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.models.cross_encoder import CrossEncoder
from retrieval_lab.run_layout import RunLayout
from retrieval_lab.search import search

log = logging.getLogger(__name__)


@dataclass
class Retrieval:
    """What one query set retrieved, and what the index profile needs of it."""

    run: Run
    seconds: float  # the search itself (a dense model's query encoding is not counted)
    query_embeddings: np.ndarray | None  # None for a lexical index


class Evaluator:
    """BEIR-style evaluation of one split.

    Args:
        split: qrels split to evaluate (never the one trained on, unless you mean it).
        k: depth of the retrieved list per query (the TREC run file holds k docs per query).
        metrics: ranx metric names, reported overall and per query.
        ignore_identical_ids: drop a retrieved doc whose id equals the query id before writing
            the run and scoring (BEIR's setting for datasets whose queries are documents).
        profile_index: also report the index's recall against exact search, per-query latency
            (p50, p95), queries per second, size in bytes and build time.
        latency_queries: how many queries are timed one at a time for the latency percentiles.
        rerank: an exported cross-encoder that re-scores each query's top ``rerank_depth``; the
            first stage's run and metrics are kept beside the re-ranked ones.
        rerank_depth, rerank_max_length, rerank_batch_size: how deep, how long an input, how many at once.
        doc_template: the document text the cross-encoder reads.
    """

    def __init__(
        self,
        split: str = "test",
        k: int = 1000,
        metrics: Sequence[str] = DEFAULT_METRICS,
        ignore_identical_ids: bool = False,
        profile_index: bool = True,
        latency_queries: int = 1000,
        rerank: str | None = None,
        rerank_depth: int = 100,
        rerank_max_length: int = 512,
        rerank_batch_size: int = 32,
        doc_template: str = "{title} {text}",
    ) -> None:
        self.split = split
        self.k = k
        self.metrics = list(metrics)
        self.ignore_identical_ids = ignore_identical_ids
        self.profile_index = profile_index
        self.latency_queries = latency_queries
        self.rerank = rerank
        self.rerank_depth = rerank_depth
        self.rerank_max_length = rerank_max_length
        self.rerank_batch_size = rerank_batch_size
        self.doc_template = doc_template

    def __call__(
        self,
        model: BiEncoder | BM25Index,
        dataset: BeirDataset,
        index: Index | BM25Index,
        corpus: CorpusEmbeddings | None,
        run_dir: Path,
        batch_size: int,
        progress: bool,
    ) -> dict[str, float]:
        queries = dataset.split_queries(self.split)
        # One extra hit per query with ignore_identical_ids, so k remain once the query's own
        # id is dropped.
        depth = self.k + 1 if self.ignore_identical_ids else self.k
        retrieval = self.retrieve(model, index, corpus, queries, depth, batch_size, progress)
        run = retrieval.run
        if self.ignore_identical_ids:
            run = {q: dict(islice(((d, s) for d, s in docs.items() if d != q), self.k))
                   for q, docs in run.items()}
        layout = RunLayout(run_dir)
        record: dict = {"dataset": dataset.name, "split": self.split, "k": self.k}
        if self.rerank:
            write_run(layout.first_stage_run_file, run)
            first, _ = evaluate(dataset.qrels[self.split], run, self.metrics)
            cross_encoder = CrossEncoder(self.rerank, max_length=self.rerank_max_length)
            run, seconds = rerank(run, dataset, queries, cross_encoder, self.rerank_depth, self.doc_template,
                                  self.rerank_batch_size)
            record["first_stage"] = {"metrics": first}
            record["rerank"] = {"model": self.rerank, "depth": self.rerank_depth, "seconds": round(seconds, 3)}
            log.info("%s/%s first stage: %s", dataset.name, self.split,
                     "  ".join(f"{m} {first[m]:.4f}" for m in self.metrics))
        write_run(layout.run_file, run)
        overall, per_query = evaluate(dataset.qrels[self.split], run, self.metrics)
        rows = ["query_id\t" + "\t".join(self.metrics)]
        rows += [f"{q}\t" + "\t".join(f"{v[m]:.6f}" for m in self.metrics) for q, v in per_query.items()]
        atomic_write_text(layout.metrics_per_query, "\n".join(rows) + "\n")
        record |= {"num_queries": len(per_query), "metrics": overall}
        if self.profile_index:
            if isinstance(index, BM25Index):
                record["index"] = profile_bm25_index(index, list(queries.values()), self.k,
                                                     retrieval.seconds, self.latency_queries)
            else:
                record["index"] = profile_index(
                    index, corpus.embeddings, retrieval.query_embeddings, self.k,
                    retrieval.seconds, latency_queries=self.latency_queries)
            log.info("index %s", record["index"])
        atomic_write_json(layout.metrics, record)
        log.info("%s/%s: %s", dataset.name, self.split,
                 "  ".join(f"{m} {overall[m]:.4f}" for m in self.metrics))
        return overall

    @staticmethod
    def retrieve(
        model: BiEncoder | BM25Index,
        index: Index | BM25Index,
        corpus: CorpusEmbeddings | None,
        queries: dict[str, str],
        k: int,
        batch_size: int,
        progress: bool,
    ) -> Retrieval:
        """The top ``k`` documents of each query (id -> text): a BM25 index is searched with the
        query texts, a dense index with their embeddings under ``model``."""
        query_ids = list(queries)
        if isinstance(index, BM25Index):
            start = time.perf_counter()
            hits = index.search(list(queries.values()), k)
            return Retrieval(dict(zip(query_ids, hits)), time.perf_counter() - start, None)
        embeddings = encode_texts(model, list(queries.values()), "query", batch_size, progress)
        start = time.perf_counter()
        run = search(index, embeddings, query_ids, corpus.doc_ids, k)
        return Retrieval(run, time.perf_counter() - start, embeddings)
