"""The miner protocol, and the ranking miner that every built-in miner but ``file`` is.

A miner is a ``_target_`` component (``conf/miner/<name>.yaml``), built once per run; ``miner:
null`` (``miner=none``) trains on in-batch negatives alone. A ranking miner ranks the corpus for
each training query; the shared selection (:mod:`retrieval_lab.mining.selection`) turns the
ranking into negatives, which the cache keeps for every later run.
"""

import logging
import random
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytorch_lightning as pl

from retrieval_lab.config.rules import Rule
from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.mining.cache import cached_negatives
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
    """Hard negatives for training.

    ``name`` labels the run record's ``mining`` entry; ``per_pair`` is how many of its query's
    negatives each training pair carries per batch. ``changes_during_training``: the negatives
    change as the model trains, so pair scores computed once before training (a teacher's) cannot
    follow them. ``rules``: the cross-field config rules the miner needs.
    """

    name: ClassVar[str]
    changes_during_training: ClassVar[bool] = False
    rules: ClassVar[tuple[Rule, ...]] = ()

    @property
    @abstractmethod
    def per_pair(self) -> int: ...

    @abstractmethod
    def negatives(self, dataset: BeirDataset, split: str, doc_template: str,
                  run_model: Any = None) -> tuple[Negatives, dict[str, Any]]:
        """The negatives of ``split`` and the run record's ``mining`` entry; ``run_model`` is the
        model the run starts from (before training)."""

    def callbacks(self, dataset: BeirDataset, split: str, doc_template: str) -> list[pl.Callback]:
        """Callbacks the trainer runs with (a refresh during training); none by default."""
        return []

    def history(self) -> dict[str, Any]:
        """What happened during training, for the run record's ``mining`` entry."""
        return {}


class RankingMiner(Miner):
    """Args: the selection controls (``num_negatives``, ``rank_range``, ``sampling``, the
    false-negative filters, ``exclude_positives``: :class:`NegativeSelection`); ``per_pair``
    (null: all of a query's negatives); ``seed`` for random sampling; ``cache_dir``: where mined
    negatives are kept (``<cache_dir>/negatives/``; null mines afresh every run).

    Subclasses say how they rank (:meth:`rank`) and what identifies their model (:meth:`fingerprint`,
    part of the cache key)."""

    rules = (*NegativeSelection.rules,
             Rule("miner.per_pair", lambda run: run["miner"].get("per_pair") is None or run["miner"]["per_pair"] >= 1,
                  "must be >= 1 (or null: all of a query's negatives)"),)

    def __init__(self, num_negatives: int = 1, rank_range: list[int] | tuple[int, int] = (1, 100),
                 sampling: Literal["top", "random"] = "top", absolute_margin: float | None = None,
                 relative_margin: float | None = None, max_score: float | None = None,
                 exclude_positives: bool = True, per_pair: int | None = None, seed: int = 0,
                 cache_dir: str | None = None) -> None:
        self.selection = NegativeSelection(
            num_negatives=num_negatives, rank_range=tuple(rank_range), sampling=sampling,
            absolute_margin=absolute_margin, relative_margin=relative_margin, max_score=max_score,
            exclude_positives=exclude_positives,
        )
        if per_pair is not None and per_pair < 1:
            raise ValueError(f"per_pair must be >= 1, got {per_pair}")
        self._per_pair = per_pair
        self.seed = seed
        self.cache_dir = None if cache_dir is None else Path(cache_dir)

    @property
    def per_pair(self) -> int:
        return self._per_pair or self.selection.num_negatives

    @property
    def uses_seed(self) -> bool:
        """Whether the seed changes the negatives (random sampling from the window)."""
        return self.selection.sampling == "random"

    @abstractmethod
    def fingerprint(self, model: Any = None) -> dict[str, Any]:
        """What identifies the mining model (``model``, where the miner mines with the run's) and
        its settings; part of the negatives' cache key."""

    @abstractmethod
    def rank(
        self, dataset: BeirDataset, queries: dict[str, str], positives: dict[str, list[str]],
        doc_template: str, depth: int, model: Any = None,
    ) -> tuple[dict[str, Ranking], dict[str, dict[str, float]]]:
        """The top ``depth`` documents of each query, and the score of each labelled positive."""

    def vetoes(
        self, dataset: BeirDataset, queries: dict[str, str], positives: dict[str, list[str]],
        rankings: dict[str, Ranking], doc_template: str,
    ) -> dict[str, dict[str, set[str]]]:
        """The miner's own false-negative filters over the candidates of the rank window: filter
        name -> query id -> the doc ids it drops (a cross-encoder's judgement, say). The selection
        applies them after its own, and the run record counts each under its name. None here."""
        return {}

    def mining_model(self, run_model: Any) -> Any:
        """The model this miner ranks with, given the run's (none for a lexical miner)."""
        return None

    def negatives(self, dataset: BeirDataset, split: str, doc_template: str,
                  run_model: Any = None) -> tuple[Negatives, dict[str, Any]]:
        model = self.mining_model(run_model)
        if self.cache_dir is None:
            result = self.mine(dataset, split, doc_template, model)
            negatives, record = result.negatives, {**result.summary(), "cache_hit": False}
        else:
            negatives, path, record = cached_negatives(self, dataset, split, doc_template, self.cache_dir, model)
            record = {"file": str(path), **record}
        log.info("%s negatives for %d queries (cache %s); dropped per filter: %s", self.name, len(negatives),
                 "hit" if record["cache_hit"] else "miss", record.get("drops"))
        return negatives, {"miner": self.name, **record}

    def mine(self, dataset: BeirDataset, split: str, doc_template: str, model: Any = None,
             seed: int | None = None) -> MiningResult:
        """Rank and select, without the cache; ``seed`` overrides the miner's (a refresh's)."""
        qrels = dataset.qrels[split]
        queries = dataset.split_queries(split)
        positives = {q: [d for d, grade in docs.items() if grade > 0] for q, docs in qrels.items()}
        rankings, positive_scores = self.rank(dataset, queries, positives, doc_template, self.selection.depth, model)
        vetoes = self.vetoes(dataset, queries, positives, rankings, doc_template)
        rng = random.Random(self.seed if seed is None else seed)
        drops: Counter = Counter({name: 0 for name in (*FILTERS, *vetoes)})
        negatives: Negatives = {}
        short = 0
        for query_id in queries:
            vetoed = {name: dropped.get(query_id, set()) for name, dropped in vetoes.items()}
            chosen = self.selection.select(rankings[query_id], positive_scores[query_id], rng, drops, vetoed)
            short += len(chosen) < self.selection.num_negatives
            if chosen:
                negatives[query_id] = [(d, float(s)) for d, s in chosen]
        result = MiningResult(negatives, dict(drops), len(queries), short)
        log.info("mined %s/%s with %s: %d queries, %d short of %d negatives; dropped %s",
                 dataset.name, split, type(self).__name__, result.queries, short,
                 self.selection.num_negatives, result.drops)
        return result
