"""Which of a query's mined negatives a training pair carries in one batch.

``top`` always takes the best-ranked ones (static negatives, as DPR); ``random`` draws uniformly
from the query's pool for every batch (ANCE and STAR sample from the top-k); ``balanced_margin``
is TAS-Balanced's margin sampling (Hofstätter et al., 2021): the pool's scores are split into
``bins`` equal-width bins, and each negative comes from a bin chosen uniformly among the
non-empty ones, so easy and hard pairs are drawn alike whatever their count. For one query the
positive's score is fixed, so binning the negatives' scores bins the margins.
"""

import random
from typing import Literal

Strategy = Literal["top", "random", "balanced_margin"]
STRATEGIES = ("top", "random", "balanced_margin")


class NegativePicker:
    def __init__(self, strategy: Strategy = "random", bins: int = 10) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"negative picking must be one of {list(STRATEGIES)}, got {strategy!r}")
        if bins < 1:
            raise ValueError(f"margin bins must be >= 1, got {bins}")
        self.strategy = strategy
        self.bins = bins

    def pick(self, pool: list[tuple[str, float | None]], k: int, rng: random.Random) -> list[str]:
        """``k`` distinct doc ids from ``pool`` ((doc id, score) best first); all of it when smaller."""
        if len(pool) <= k or self.strategy == "top":
            return [d for d, _ in pool[:k]]
        if self.strategy == "random":
            return [d for d, _ in rng.sample(pool, k)]
        return self._balanced(pool, k, rng)

    def _balanced(self, pool: list[tuple[str, float | None]], k: int, rng: random.Random) -> list[str]:
        scores = [s for _, s in pool]
        if any(s is None for s in scores):
            raise ValueError("balanced_margin picking needs a score for every negative; the negatives "
                             "file has none (pick 'random' or 'top', or give scores)")
        low, high = min(scores), max(scores)
        width = (high - low) / self.bins or 1.0
        bins: dict[int, list[str]] = {}
        for doc_id, score in pool:
            bins.setdefault(min(int((score - low) / width), self.bins - 1), []).append(doc_id)
        chosen = []
        while len(chosen) < k:
            key = rng.choice(sorted(bins))
            members = bins[key]
            chosen.append(members.pop(rng.randrange(len(members))))
            if not members:
                del bins[key]
        return chosen
