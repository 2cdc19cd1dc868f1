"""Stage ``evaluate``: search the index with the split's queries, write the run, score it."""

import logging
import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.embedding_cache import CorpusEmbeddings
from retrieval_lab.encoding import encode_texts
from retrieval_lab.evaluation import DEFAULT_METRICS, evaluate, write_run
from retrieval_lab.index.base import Index
from retrieval_lab.index_profile import profile_index
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.atomic import atomic_write_json, atomic_write_text
from retrieval_lab.search import search

log = logging.getLogger(__name__)


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
    """

    def __init__(
        self,
        split: str = "test",
        k: int = 1000,
        metrics: Sequence[str] = DEFAULT_METRICS,
        ignore_identical_ids: bool = False,
        profile_index: bool = True,
        latency_queries: int = 1000,
    ) -> None:
        self.split = split
        self.k = k
        self.metrics = list(metrics)
        self.ignore_identical_ids = ignore_identical_ids
        self.profile_index = profile_index
        self.latency_queries = latency_queries

    def __call__(
        self,
        model: BiEncoder,
        dataset: BeirDataset,
        index: Index,
        corpus: CorpusEmbeddings,
        run_dir: Path,
        batch_size: int,
        progress: bool,
    ) -> dict[str, float]:
        queries = dataset.split_queries(self.split)
        query_ids = list(queries)
        embeddings = encode_texts(model, list(queries.values()), "query", batch_size, progress)
        doc_ids = corpus.doc_ids
        start = time.perf_counter()
        if self.ignore_identical_ids:
            # One extra hit per query, so k remain once the query's own id is dropped.
            run = search(index, embeddings, query_ids, doc_ids, self.k + 1)
            run = {q: dict(islice(((d, s) for d, s in docs.items() if d != q), self.k))
                   for q, docs in run.items()}
        else:
            run = search(index, embeddings, query_ids, doc_ids, self.k)
        search_seconds = time.perf_counter() - start
        write_run(run_dir / "run.trec", run)
        overall, per_query = evaluate(dataset.qrels[self.split], run, self.metrics)
        rows = ["query_id\t" + "\t".join(self.metrics)]
        rows += [f"{q}\t" + "\t".join(f"{v[m]:.6f}" for m in self.metrics) for q, v in per_query.items()]
        atomic_write_text(run_dir / "metrics_per_query.tsv", "\n".join(rows) + "\n")
        record = {"dataset": dataset.name, "split": self.split, "k": self.k,
                  "num_queries": len(per_query), "metrics": overall}
        if self.profile_index:
            record["index"] = profile_index(index, corpus.embeddings, embeddings, self.k,
                                            search_seconds, latency_queries=self.latency_queries)
            log.info("index %s", record["index"])
        atomic_write_json(run_dir / "metrics.json", record)
        log.info("%s/%s: %s", dataset.name, self.split,
                 "  ".join(f"{m} {overall[m]:.4f}" for m in self.metrics))
        return overall
