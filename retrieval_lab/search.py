"""Top-k retrieval of a query set against an index, as a run (query id -> doc id -> score)."""

from collections.abc import Sequence

import numpy as np

from retrieval_lab.index.base import Index

Run = dict[str, dict[str, float]]


def search(
    index: Index,
    query_embeddings: np.ndarray,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    k: int,
    chunk_size: int = 1024,
) -> Run:
    """Search in chunks of queries so memory stays at chunk_size x k, never queries x corpus."""
    run: Run = {}
    for start in range(0, len(query_ids), chunk_size):
        scores, rows = index.search(query_embeddings[start : start + chunk_size], k)
        for qid, q_scores, q_rows in zip(query_ids[start : start + chunk_size], scores, rows):
            run[qid] = {doc_ids[r]: float(s) for s, r in zip(q_scores, q_rows) if r >= 0}
    return run
