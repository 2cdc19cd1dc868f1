"""Dense candidates vetted by a cross-encoder (sentence-transformers' ``mine_hard_negatives(
cross_encoder=...)``, RocketQA's denoising): a candidate that the cross-encoder scores within
``margin`` of the query's weakest labelled positive is more likely an unlabelled positive than a
negative, and is dropped."""

from typing import Any

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.mining.dense_miner import DenseMiner
from retrieval_lab.mining.miner import Ranking
from retrieval_lab.teachers import CrossEncoderTeacher


class CrossEncoderFilterMiner(DenseMiner):
    """:class:`DenseMiner`'s candidates, less those with ``ce(q, d) > min_p ce(q, p) - margin``
    under ``cross_encoder`` (a :class:`CrossEncoderTeacher`), ``p`` the query's labelled positives.
    Only the candidates of the rank window are scored; the drops are counted as
    ``cross_encoder`` beside the selection's own filters in the run record."""

    name = "dense_cross_encoder"

    def __init__(self, cross_encoder: CrossEncoderTeacher, margin: float = 0.0, **dense: Any) -> None:
        super().__init__(**dense)
        self.cross_encoder = cross_encoder
        self.margin = margin

    def fingerprint(self, model: Any = None) -> dict[str, Any]:
        return {**super().fingerprint(model), "kind": self.name, "margin": self.margin,
                "cross_encoder": self.cross_encoder.fingerprint()}

    def vetoes(
        self, dataset: BeirDataset, queries: dict[str, str], positives: dict[str, list[str]],
        rankings: dict[str, Ranking], doc_template: str,
    ) -> dict[str, dict[str, set[str]]]:
        first, last = self.selection.rank_range
        candidates = {q: [d for d, _ in rankings[q][first - 1:last] if d not in positives[q]] for q in queries}
        pairs = [(q, d) for q in queries for d in positives[q] + candidates[q]]
        scores = dict(zip(pairs, self.cross_encoder.score(dataset, pairs, doc_template).tolist()))
        dropped = {}
        for query_id in queries:
            floor = min(scores[(query_id, p)] for p in positives[query_id])
            dropped[query_id] = {d for d in candidates[query_id] if scores[(query_id, d)] > floor - self.margin}
        return {"cross_encoder": dropped}
