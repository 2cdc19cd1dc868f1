"""BM25 negatives (DPR's): the top BM25 documents of each training query that are not positives."""

from typing import Any

from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.lexical import BM25Index
from retrieval_lab.mining.miner import RankingMiner, Ranking


class BM25Miner(RankingMiner):
    """Args: ``bm25``, the (unbuilt) :class:`BM25Index` to rank with (k1, b, stemmer, ...); the
    rest as :class:`RankingMiner`."""

    name = "bm25"

    def __init__(self, bm25: BM25Index | None = None, **selection: Any) -> None:
        super().__init__(**selection)
        self.bm25 = bm25 if bm25 is not None else BM25Index()

    def fingerprint(self, model: Any = None) -> dict[str, Any]:
        return {"kind": "bm25", **self.bm25.params}

    def rank(
        self, dataset: BeirDataset, queries: dict[str, str], positives: dict[str, list[str]],
        doc_template: str, depth: int, model: Any = None,
    ) -> tuple[dict[str, Ranking], dict[str, dict[str, float]]]:
        index = BM25Index(**self.bm25.params)  # a fresh index: mining may run more than once
        index.build(list(dataset.corpus), [document_text(doc, doc_template) for doc in dataset.corpus.values()])
        hits = index.search(list(queries.values()), depth)
        rankings = {q: list(docs.items()) for q, docs in zip(queries, hits)}
        positive_scores = {
            q: dict(zip(positives[q], index.score(text, positives[q]).tolist())) for q, text in queries.items()
        }
        return rankings, positive_scores
