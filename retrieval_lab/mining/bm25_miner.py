"""BM25 negatives (DPR's): the top BM25 documents of each training query that are not positives."""

from typing import Any

from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.lexical import BM25Index
from retrieval_lab.mining.miner import Miner, Ranking
from retrieval_lab.mining.selection import NegativeSelection


class BM25Miner(Miner):
    """Args: ``selection``, ``seed`` (random sampling), and ``bm25``: :class:`BM25Index`'s
    arguments (k1, b, stemmer, ...)."""

    def __init__(self, selection: NegativeSelection, seed: int = 0, **bm25: Any) -> None:
        super().__init__(selection, seed)
        self.bm25 = bm25

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "bm25", **BM25Index(**self.bm25).params}

    def rank(
        self, dataset: BeirDataset, queries: dict[str, str], positives: dict[str, list[str]],
        doc_template: str, depth: int,
    ) -> tuple[dict[str, Ranking], dict[str, dict[str, float]]]:
        index = BM25Index(**self.bm25)
        index.build(list(dataset.corpus), [document_text(doc, doc_template) for doc in dataset.corpus.values()])
        hits = index.search(list(queries.values()), depth)
        rankings = {q: list(docs.items()) for q, docs in zip(queries, hits)}
        positive_scores = {
            q: dict(zip(positives[q], index.score(text, positives[q]).tolist())) for q, text in queries.items()
        }
        return rankings, positive_scores
