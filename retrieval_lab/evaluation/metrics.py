"""Retrieval metrics computed with ranx, with trec_eval / BEIR semantics."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from statistics import fmean

import ranx
from numba.core.errors import NumbaTypeSafetyWarning

from retrieval_lab.evaluation.trec import Run, trec_order

Qrels = dict[str, dict[str, int]]  # query id -> doc id -> graded relevance (0 = judged non-relevant)

DEFAULT_METRICS = ("ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100")


def evaluate(
    qrels: Qrels,
    run: Run,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ignore_identical_ids: bool = False,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Score ``run`` against ``qrels``; returns ({metric: mean}, {query id: {metric: value}}).

    Metric names are ranx's (``ndcg@10`` is trec_eval's ``ndcg_cut_10``: linear gain).
    The query set is every qrels query, as trec_eval's (pytrec_eval's, BEIR's) evaluated queries:
    one whose judgements hold no relevant (grade > 0) document scores 0 on every metric and counts
    in the mean, as trec_eval scores it; one that retrieved nothing scores 0 too (trec_eval -c);
    run-only queries are ignored.
    ``ignore_identical_ids`` drops doc ids equal to the query id from the run (as BEIR does).
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    # Grade-0 entries are passed to ranx as they are: its relevance level 1 already ignores them
    # for recall/MAP/MRR, and they add no gain to nDCG, as in trec_eval. A query with no relevant
    # document cannot be given to ranx (it divides by its zero relevant documents): it keeps its zeros.
    judged = {qid: docs for qid, docs in qrels.items() if any(g > 0 for g in docs.values())}
    if not judged:
        raise ValueError("no query in qrels has a relevant (grade > 0) document")

    ranked: Run = {}
    for qid in judged:
        docs = run.get(qid, {})
        if ignore_identical_ids:
            docs = {doc: score for doc, score in docs.items() if doc != qid}
        if docs:
            # ranx orders a query's docs with an unstable argsort of the scores, so tied scores
            # come out in arbitrary order, whereas trec_eval breaks ties by doc id descending.
            # Passing ranks as scores makes ranx see exactly trec_eval's order.
            order = trec_order(docs)
            ranked[qid] = {doc: float(len(order) - i) for i, (doc, _) in enumerate(order)}

    # ranx cannot hold a query with no retrieved docs: such queries keep the zeros set here.
    per_query = {qid: dict.fromkeys(metrics, 0.0) for qid in qrels}
    if ranked:
        ranx_run = ranx.Run(ranked)
        with warnings.catch_warnings():  # ranx's precision casts its uint64 counts to int64, harmlessly
            warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
            ranx.evaluate(ranx.Qrels({qid: judged[qid] for qid in ranked}), ranx_run, metrics)
        for metric, scores in ranx_run.scores.items():
            for qid, value in scores.items():
                per_query[qid][metric] = float(value)
    means = {metric: fmean(values[metric] for values in per_query.values()) for metric in metrics}
    return means, per_query
