"""Stage ``evaluate``: the retriever searches with the split's queries; write the run, score it."""

import logging
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar

from retrieval_lab.atomic import atomic_write_json, atomic_write_text
from retrieval_lab.config.model_source import model_source_problem
from retrieval_lab.config.rules import Param, at_least
from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.data.val_split import val_split_problem
from retrieval_lab.evaluation import DEFAULT_METRICS, Run, evaluate, write_run
from retrieval_lab.evaluation.metrics import metrics_problem
from retrieval_lab.evaluation.mteb_results import MTEB_METRICS, mteb_scores, write_mteb_result
from retrieval_lab.evaluation.rerank import rerank
from retrieval_lab.index_profile import split_timings
from retrieval_lab.models.cross_encoder import CrossEncoder
from retrieval_lab.retrievers import AncePRF, CompositeRetrieval, Retriever, VectorPRF
from retrieval_lab.run_layout import RunLayout

log = logging.getLogger(__name__)


class Evaluator:
    """BEIR-style evaluation of one split.

    Args:
        split: qrels split to evaluate (never the one trained on, unless you mean it); ``val``
            is the train queries ``data.val_queries`` holds out of training (data/val_split.py),
            where a setting is chosen before the test split is run.
        k: depth of the retrieved list per query (the TREC run file holds k docs per query).
        metrics: metric names (``ndcg@10``, ``recall@100``, ...; evaluation/metrics.py), reported
            overall and per query.
        ignore_identical_ids: drop a retrieved doc whose id equals the query id before writing
            the run and scoring (BEIR's setting for datasets whose queries are documents).
        profile_index: also report the index's recall against exact search, per-query latency
            (p50, p95), queries per second, size in bytes and build time.
        latency_queries: how many queries are timed one at a time for the latency percentiles.
        rerank: an exported cross-encoder that re-scores each query's top ``rerank_depth``; the
            first stage's run and metrics are kept beside the re-ranked ones.
        rerank_depth, rerank_max_length, rerank_batch_size: how deep, how long an input, how many at once.
        doc_template: the document text the cross-encoder reads.
        mteb: the MTEB task this dataset is (``task_name``, ``revision``, ``split``; the dataset
            config's ``mteb``): the results are also written as its MTEB results file,
            ``mteb/<task_name>.json``, when ``split`` is the one evaluated.
        prf: pseudo-relevance feedback (``conf/evaluator/prf/``), a second dense search: vector PRF
            moves the query embeddings towards their first search's top documents; ANCE-PRF
            encodes the query followed by those documents' texts with a query encoder trained for it.

    A run made from others (a hybrid's components, PRF's first round) has them written beside it
    (``run_<part>.trec``) and scored (``metrics.json``: ``parts``), with how they were combined
    (``fusion``, ``prf``).
    """

    # A depth of 0 would write an empty run and score every metric 0.
    rules: ClassVar[tuple[Param, ...]] = (
        Param("split", val_split_problem), Param("k", at_least(1)), Param("latency_queries", at_least(1)), Param("rerank", model_source_problem),
        Param("rerank_depth", at_least(1)), Param("rerank_max_length", at_least(1)),
        Param("rerank_batch_size", at_least(1)), Param("metrics", metrics_problem),
    )

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
        mteb: dict[str, str] | None = None,
        prf: VectorPRF | AncePRF | None = None,
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
        self.mteb = dict(mteb) if mteb else None
        self.prf = prf
        # What the last call timed (index latency, QPS, build and re-rank seconds): the pipeline
        # records it in run.json, so that metrics.json holds only what a repeat run reproduces.
        self.timings: dict[str, Any] = {}
        # How the last call's run was made from others (fusion, PRF settings), for run.json too.
        self.composition: dict[str, Any] = {}

    def __call__(self, retriever: Retriever, dataset: BeirDataset, run_dir: Path) -> dict[str, float]:
        queries = dataset.split_queries(self.split)
        # One extra hit per query with ignore_identical_ids, so k remain once the query's own
        # id is dropped.
        depth = self.k + 1 if self.ignore_identical_ids else self.k
        if self.prf is not None:
            retrieval = self.prf.retrieve(retriever, queries, depth, self.ignore_identical_ids, dataset)
        else:
            retrieval = retriever.retrieve(queries, depth)
        run = self._own_ids_dropped(retrieval.run)
        layout = RunLayout(run_dir)
        record: dict = {"dataset": dataset.name, "split": self.split, "k": self.k}
        if isinstance(retrieval, CompositeRetrieval):
            record["parts"] = {}
            for name, part in retrieval.parts.items():
                part_run = self._own_ids_dropped(part.run)
                write_run(layout.part_run_file(name), part_run)
                scored, _ = evaluate(dataset.qrels[self.split], part_run, self.metrics)
                record["parts"][name] = {"metrics": scored}
                log.info("%s/%s %s: %s", dataset.name, self.split, name,
                         "  ".join(f"{m} {scored[m]:.4f}" for m in self.metrics))
            record |= retrieval.record
        self.composition = dict(retrieval.record) if isinstance(retrieval, CompositeRetrieval) else {}
        timings: dict[str, Any] = {"retrieve_seconds": round(retrieval.seconds, 3)}
        if self.rerank:
            write_run(layout.first_stage_run_file, run)
            first, _ = evaluate(dataset.qrels[self.split], run, self.metrics)
            cross_encoder = CrossEncoder(self.rerank, max_length=self.rerank_max_length)
            run, seconds = rerank(run, dataset, queries, cross_encoder, self.rerank_depth, self.doc_template,
                                  self.rerank_batch_size)
            record["first_stage"] = {"metrics": first}
            record["rerank"] = {"model": self.rerank, "depth": self.rerank_depth}
            timings["rerank_seconds"] = round(seconds, 3)
            log.info("%s/%s first stage: %s", dataset.name, self.split,
                     "  ".join(f"{m} {first[m]:.4f}" for m in self.metrics))
        write_run(layout.run_file, run)
        # The MTEB file's metrics are scored with the others, in one pass over the run.
        mteb = self.mteb if self.mteb and self.mteb["split"] == self.split else None
        wanted = list(dict.fromkeys([*self.metrics, *(MTEB_METRICS if mteb else ())]))
        scored, per_query = evaluate(dataset.qrels[self.split], run, wanted)
        overall = {m: scored[m] for m in self.metrics}
        rows = ["query_id\t" + "\t".join(self.metrics)]
        rows += [f"{q}\t" + "\t".join(f"{v[m]:.6f}" for m in self.metrics) for q, v in per_query.items()]
        atomic_write_text(layout.metrics_per_query, "\n".join(rows) + "\n")
        record |= {"num_queries": len(per_query), "metrics": overall}
        if mteb:
            path = layout.mteb_results(mteb["task_name"])
            write_mteb_result(path, mteb, mteb_scores(scored), retrieval.seconds)
            log.info("MTEB results file: %s", path)
        if self.profile_index:
            profile = retriever.profile(queries, retrieval, self.k, self.latency_queries)
            log.info("index %s", profile)
            record["index"], timings["index"] = _split_profile(profile)
        self.timings = timings
        atomic_write_json(layout.metrics, record)
        log.info("%s/%s: %s", dataset.name, self.split,
                 "  ".join(f"{m} {overall[m]:.4f}" for m in self.metrics))
        return overall

    def _own_ids_dropped(self, run: Run) -> Run:
        """With ``ignore_identical_ids``, each query's own id left out of its top ``k``."""
        if not self.ignore_identical_ids:
            return run
        return {q: dict(islice(((d, s) for d, s in docs.items() if d != q), self.k)) for q, docs in run.items()}


def _split_profile(profile: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The profile without its timings, and its timings, at every level (a hybrid's profile holds
    one per component)."""
    report, timings = split_timings({key: v for key, v in profile.items() if not isinstance(v, dict)})
    for key, value in profile.items():
        if isinstance(value, dict):
            report[key], timings[key] = _split_profile(value)
    return report, timings
