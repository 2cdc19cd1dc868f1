"""Re-ranking: a cross-encoder re-scores each query's first-stage top ``depth``; the documents
below keep their first-stage order beneath them (BEIR's re-ranking protocol)."""

import logging
import time

from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.evaluation.trec import Run, trec_order
from retrieval_lab.models.cross_encoder import CrossEncoder

log = logging.getLogger(__name__)


def rerank(run: Run, dataset: BeirDataset, queries: dict[str, str], cross_encoder: CrossEncoder, depth: int,
           doc_template: str, batch_size: int = 32) -> tuple[Run, float]:
    """The re-ranked run and the seconds the cross-encoder took."""
    if depth < 1:
        raise ValueError(f"rerank_depth must be >= 1, got {depth}")
    heads = {q: [d for d, _ in trec_order(docs)[:depth]] for q, docs in run.items()}
    pairs = [(q, d) for q, docs in heads.items() for d in docs]
    start = time.perf_counter()
    scores = cross_encoder.predict([queries[q] for q, _ in pairs],
                                   [document_text(dataset.corpus[d], doc_template) for _, d in pairs], batch_size)
    seconds = time.perf_counter() - start
    reranked: Run = {q: {} for q in run}
    for (q, d), score in zip(pairs, scores.tolist()):
        reranked[q][d] = score
    for q, docs in run.items():
        tail = trec_order(docs)[depth:]
        floor = min(reranked[q].values(), default=0.0)
        # below every re-ranked score, in first-stage order
        for offset, (d, _) in enumerate(tail, start=1):
            reranked[q][d] = floor - offset
    log.info("re-ranked the top %d of %d queries (%d pairs) in %.1f s", depth, len(run), len(pairs), seconds)
    return reranked, seconds
