"""STAR's negatives (Zhan et al., 2021, "Optimizing Dense Retrieval Model Training with Hard
Negatives"): static hard negatives from a dense model, mixed with random documents that keep the
training distribution close to the full corpus the model must rank at test time."""

import random
from typing import Any

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.mining.dense_miner import DenseMiner
from retrieval_lab.mining.miner import MiningResult


class StarMiner(DenseMiner):
    """The dense miner's ``num_negatives`` hard negatives plus ``random_negatives`` seeded random
    corpus documents per query (never a labelled positive nor one of its hard negatives); the
    random ones carry no score. A pair carries all of them by default (``per_pair``)."""

    name = "star"

    def __init__(self, random_negatives: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if random_negatives < 0:
            raise ValueError(f"random_negatives must be >= 0, got {random_negatives}")
        self.random_negatives = random_negatives

    @property
    def per_pair(self) -> int:
        return self._per_pair or self.selection.num_negatives + self.random_negatives

    @property
    def uses_seed(self) -> bool:
        return self.random_negatives > 0 or super().uses_seed

    def fingerprint(self, model: Any = None) -> dict[str, Any]:
        return {**super().fingerprint(model), "kind": "star", "random_negatives": self.random_negatives}

    def mine(self, dataset: BeirDataset, split: str, doc_template: str, model: Any = None,
             seed: int | None = None) -> MiningResult:
        result = super().mine(dataset, split, doc_template, model, seed)
        rng = random.Random((self.seed if seed is None else seed) + 1)
        doc_ids = list(dataset.corpus)
        qrels = dataset.qrels[split]
        for query_id in dataset.split_queries(split):
            taken = set(qrels[query_id]) | {d for d, _ in result.negatives.get(query_id, [])}
            extra: list[tuple[str, float | None]] = []
            while len(extra) < self.random_negatives and len(taken) < len(doc_ids):
                doc_id = rng.choice(doc_ids)
                if doc_id not in taken:
                    taken.add(doc_id)
                    extra.append((doc_id, None))
            if extra:
                result.negatives[query_id] = result.negatives.get(query_id, []) + extra
        result.stats["random_negatives"] = self.random_negatives
        return result
