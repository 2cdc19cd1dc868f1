"""Retrieval metrics computed by trec_eval itself (pytrec_eval), under ranx-style names.

pytrec_eval links trec_eval's C code: it imports in milliseconds and compiles nothing, where ranx
spent 10-30 s of every fresh process on numba (importing it, then compiling its typed containers),
a cost each run, sweep job and test paid again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from statistics import fmean
from typing import Any

import pytrec_eval

from retrieval_lab.evaluation.trec import Run, trec_order

Qrels = dict[str, dict[str, int]]  # query id -> doc id -> graded relevance (0 = judged non-relevant)

DEFAULT_METRICS = ("ndcg@10", "mrr@10", "recall@10", "recall@100", "map@100")

# Our name (before the cut-off) -> trec_eval's measure; ``ndcg@10`` is ``ndcg_cut_10`` (linear gain).
CUT_MEASURES = {"ndcg": "ndcg_cut", "map": "map_cut", "recall": "recall", "precision": "P", "hit_rate": "success"}
WHOLE_MEASURES = {"ndcg": "ndcg", "map": "map", "mrr": "recip_rank", "r-precision": "Rprec"}
_NAME = re.compile(r"^([a-z_-]+)(?:@([1-9][0-9]*))?$")


def metric_problem(metric: str) -> str | None:
    """Why ``metric`` is not a name this module scores (None when it is)."""
    match = _NAME.match(metric)
    if match is not None:
        name, cut = match.groups()
        if (name in CUT_MEASURES or name == "mrr") if cut else name in WHOLE_MEASURES:
            return None
    return (f"unknown metric {metric!r}; known: {', '.join(f'{n}@k' for n in [*CUT_MEASURES, 'mrr'])}, "
            f"{', '.join(WHOLE_MEASURES)}")


def metrics_problem(value: Any, node: Any = None, run: Any = None) -> str | None:
    """A config rule (config/rules.py) for a list of metric names: the first one not scored here."""
    if not value:
        return "no metric given"
    return next((p for p in map(metric_problem, value) if p is not None), None)


def evaluate(
    qrels: Qrels,
    run: Run,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ignore_identical_ids: bool = False,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Score ``run`` against ``qrels``; returns ({metric: mean}, {query id: {metric: value}}).

    The query set is every qrels query, as trec_eval's (pytrec_eval's, BEIR's) evaluated queries:
    one whose judgements hold no relevant (grade > 0) document scores 0 on every metric and counts
    in the mean, as trec_eval scores it; one that retrieved nothing scores 0 too (trec_eval -c);
    run-only queries are ignored. Grade-0 judgements are non-relevant (trec_eval's level 1).
    ``mrr@k`` is trec_eval's ``recip_rank`` over each query's top k (trec_eval cuts no MRR).
    ``ignore_identical_ids`` drops doc ids equal to the query id from the run (as BEIR does).
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    for metric in metrics:
        if (problem := metric_problem(metric)) is not None:
            raise ValueError(problem)
    judged = {qid: docs for qid, docs in qrels.items() if any(g > 0 for g in docs.values())}
    if not judged:
        raise ValueError("no query in qrels has a relevant (grade > 0) document")

    ranked: Run = {}
    for qid in judged:
        docs = run.get(qid, {})
        if ignore_identical_ids:
            docs = {doc: score for doc, score in docs.items() if doc != qid}
        if docs:
            ranked[qid] = docs

    per_query = {qid: dict.fromkeys(metrics, 0.0) for qid in qrels}
    if ranked:
        judged = {qid: judged[qid] for qid in ranked}
        for metric, scores in _trec_eval(judged, ranked, metrics):
            for qid, value in scores.items():
                per_query[qid][metric] = value
    means = {metric: fmean(values[metric] for values in per_query.values()) for metric in metrics}
    return means, per_query


def _trec_eval(qrels: Qrels, ranked: Run, metrics: list[str]) -> Iterable[tuple[str, dict[str, float]]]:
    """(metric, {query id: value}) for each metric, from one trec_eval pass. ``mrr@k`` comes from
    the whole list's ``recip_rank`` (1 / the first relevant document's rank): that rank if it is
    within k, else 0, which is trec_eval's recip_rank of the list cut to its top k."""
    cuts: dict[str, list[int]] = {}  # trec_eval measure -> its cut-offs
    whole = []
    for metric in metrics:
        name, _, cut = metric.partition("@")
        if cut and name != "mrr":
            cuts.setdefault(CUT_MEASURES[name], []).append(int(cut))
        else:
            whole.append(WHOLE_MEASURES[name])
    measures = {f"{m}.{','.join(map(str, sorted(set(ks))))}" for m, ks in cuts.items()} | set(whole)
    if not measures:
        return
    results = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(
        {qid: _in_trec_order(docs) for qid, docs in ranked.items()})
    for metric in metrics:
        name, _, cut = metric.partition("@")
        if name == "mrr" and cut:
            yield metric, {qid: _cut_reciprocal_rank(values["recip_rank"], int(cut)) for qid, values in results.items()}
            continue
        key = f"{CUT_MEASURES[name]}_{cut}" if cut else WHOLE_MEASURES[name]
        yield metric, {qid: float(values[key]) for qid, values in results.items()}


def _cut_reciprocal_rank(reciprocal_rank: float, cut: int) -> float:
    return float(reciprocal_rank) if reciprocal_rank > 0 and round(1 / reciprocal_rank) <= cut else 0.0


def _ranks(ordered: list[tuple[str, float]]) -> dict[str, float]:
    """Scores that are the ranks of ``ordered`` (best first): trec_eval then sees exactly that order."""
    return {doc: float(len(ordered) - i) for i, (doc, _) in enumerate(ordered)}


def _in_trec_order(docs: dict[str, float]) -> dict[str, float]:
    """``docs`` as trec_eval must see them to rank them in trec_order: as they are where no two
    scores tie (the order is the scores'), else their ranks in trec_order (its tie-break). Most
    dense runs have no ties, and skipping the sort halves the time of evaluate."""
    return docs if len(set(docs.values())) == len(docs) else _ranks(trec_order(docs))
