"""What an index costs and how close it is to exact search: the trade-off beside the metrics."""

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from retrieval_lab.index.base import Index, recall_vs_exact
from retrieval_lab.index.flat import FlatIndex

# The fields of a profile that are timings: they differ from run to run, so they go into run.json
# (``timings``), never into metrics.json, which two identical runs write byte for byte the same.
TIMINGS = ("build_seconds", "latency_ms_p50", "latency_ms_p95", "qps")


def split_timings(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``report`` without its timings, and its timings."""
    return ({k: v for k, v in report.items() if k not in TIMINGS},
            {k: v for k, v in report.items() if k in TIMINGS})


def profile_index(
    index: Index,
    corpus: np.ndarray | None,
    queries: np.ndarray,
    k: int,
    search_seconds: float,
    recall_ks: tuple[int, ...] = (10, 100),
    latency_queries: int = 1000,
) -> dict[str, float | int | str]:
    """Recall of ``index`` against exact inner-product search, per-query latency (queries one at
    a time, as an online service sees them), throughput of the batch search that took
    ``search_seconds`` (the evaluation's own, not repeated here), size and build time. Without the
    ``corpus`` embeddings, recall against exact search is left out."""
    nbytes = index.nbytes()  # serializes the index: once
    report = size_report(index, nbytes)
    report["code_bytes_per_doc"] = round((nbytes - index.fixed_nbytes()) / index.size, 2)
    depth = max(recall_ks)
    if index.kind == "flat":
        report.update({f"recall_vs_exact@{r}": 1.0 for r in recall_ks})
    elif corpus is not None:
        exact = FlatIndex(index.dim)
        exact.build(corpus)
        _, exact_rows = exact.search(queries, depth)
        _, rows = index.search(queries, depth)
        report.update({f"recall_vs_exact@{r}": round(recall_vs_exact(exact_rows, rows, r), 6)
                       for r in recall_ks})
    report.update(latency_report(lambda query: index.search(query[None, :], k), queries[:latency_queries]))
    report["qps"] = round(len(queries) / search_seconds, 1)
    return report


def size_report(index: Any, nbytes: int) -> dict[str, float | int | str]:
    """Kind, documents, bytes (``nbytes``) and build time of any index (``kind``, ``size``,
    ``build_seconds``)."""
    return {"kind": index.kind, "size": index.size, "nbytes": nbytes,
            "bytes_per_doc": round(nbytes / index.size, 2),
            "build_seconds": round(index.build_seconds or 0.0, 4)}


def latency_report(search_one: Callable[[Any], Any], queries: Sequence[Any]) -> dict[str, float]:
    """p50 / p95 milliseconds of ``search_one`` over ``queries``, one at a time, as an online
    service sees them."""
    timings = []
    for query in queries:
        start = time.perf_counter()
        search_one(query)
        timings.append(time.perf_counter() - start)
    return {
        "latency_ms_p50": round(float(np.percentile(timings, 50)) * 1000, 4),
        "latency_ms_p95": round(float(np.percentile(timings, 95)) * 1000, 4),
    }
