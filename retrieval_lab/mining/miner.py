"""A miner ranks the corpus for each training query; the shared selection turns the ranking into
negatives. Subclasses say how they rank and what identifies their model (for the cache key)."""

import logging
import random
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.mining.negatives_file import Negatives
from retrieval_lab.mining.selection import FILTERS, NegativeSelection

log = logging.getLogger(__name__)

Ranking = list[tuple[str, float]]  # (doc id, score), best first


@dataclass
class MiningResult:
    negatives: Negatives
    drops: dict[str, int]  # filter -> candidates it dropped
    queries: int  # queries mined
    short: int  # queries left with fewer than num_negatives negatives
    stats: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"queries": self.queries, "short": self.short, "drops": self.drops, **self.stats}


class Miner(ABC):
    def __init__(self, selection: NegativeSelection, seed: int = 0) -> None:
        self.selection = selection
        self.seed = seed

    @property
    def uses_seed(self) -> bool:
        """Whether the seed changes the negatives (random sampling from the window)."""
        return self.selection.sampling == "random"

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """What identifies the mining model and its settings; part of the negatives' cache key."""

    @abstractmethod
    def rank(
        self, dataset: BeirDataset, queries: dict[str, str], positives: dict[str, list[str]],
        doc_template: str, depth: int,
    ) -> tuple[dict[str, Ranking], dict[str, dict[str, float]]]:
        """The top ``depth`` documents of each query, and the score of each labelled positive."""

    def mine(self, dataset: BeirDataset, split: str, doc_template: str) -> MiningResult:
        qrels = dataset.qrels[split]
        queries = dataset.split_queries(split)
        positives = {q: [d for d, grade in docs.items() if grade > 0] for q, docs in qrels.items()}
        rankings, positive_scores = self.rank(dataset, queries, positives, doc_template, self.selection.depth)
        rng = random.Random(self.seed)
        drops: Counter = Counter({name: 0 for name in FILTERS})
        negatives: Negatives = {}
        short = 0
        for query_id in queries:
            chosen = self.selection.select(rankings[query_id], positive_scores[query_id], rng, drops)
            short += len(chosen) < self.selection.num_negatives
            if chosen:
                negatives[query_id] = [(d, float(s)) for d, s in chosen]
        result = MiningResult(negatives, dict(drops), len(queries), short)
        log.info("mined %s/%s with %s: %d queries, %d short of %d negatives; dropped %s",
                 dataset.name, split, type(self).__name__, result.queries, short,
                 self.selection.num_negatives, result.drops)
        return result
