"""The controls every miner shares: which of a query's ranked candidates become its negatives.

Applied in this order to a query's ranking (best first, ranks counted from 1):

1. labelled positives are never negatives (``exclude_positives``);
2. the rank window ``rank_range = [first, last]`` keeps ranks first..last inclusive;
3. false-negative filters drop a candidate that scores too close to the query's positives:
   ``absolute_margin`` drops ``score > positive - absolute_margin``, ``relative_margin`` drops
   ``score > positive * (1 - relative_margin)`` (sentence-transformers' ``mine_hard_negatives``
   semantics), ``max_score`` drops ``score > max_score``. ``positive`` is the lowest score of the
   query's labelled positives: a candidate that outscores the weakest known positive by the
   margin is the likeliest unlabelled positive (RocketQA's denoising argument);
4. ``num_negatives`` are taken from what is left: the best ones (``sampling="top"``) or a seeded
   random draw (``"random"``, as ANCE/STAR sample from the top-k).

Every drop is counted per filter, so a mining run can report what each filter removed.
"""

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from retrieval_lab.config.rules import Param, at_least

FILTERS = ("positive", "absolute_margin", "relative_margin", "max_score")


@dataclass(frozen=True)
class NegativeSelection:
    num_negatives: int = 1
    rank_range: tuple[int, int] = (1, 100)
    sampling: Literal["top", "random"] = "top"
    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    exclude_positives: bool = True

    # The controls' config rules, checked before any work wherever a miner takes them (the
    # miner's ``rules``), and here on construction.
    rules: ClassVar[tuple[Param, ...]] = (
        Param("rank_range", lambda window, node, run: _rank_window_problem(window)),
        Param("num_negatives", at_least(1)),
        Param("sampling", lambda sampling, node, run: None if sampling in ("top", "random") else
              f"must be 'top' or 'random', got {sampling!r}"),
        Param("relative_margin", lambda margin, node, run: None if margin is None or 0 <= margin < 1 else
              f"must be in [0, 1), got {margin!r}"),
    )

    def __post_init__(self) -> None:
        fields = {"rank_range": list(self.rank_range), "num_negatives": self.num_negatives,
                  "sampling": self.sampling, "relative_margin": self.relative_margin}
        for rule in self.rules:
            violation = rule.violation({}, fields, "")
            if violation is not None:
                raise ValueError(" ".join(violation))

    @property
    def depth(self) -> int:
        """How many candidates a miner must retrieve per query: the window's last rank."""
        return self.rank_range[1]

    def select(
        self,
        ranking: Sequence[tuple[str, float]],
        positives: Mapping[str, float],
        rng: random.Random,
        drops: Counter,
        vetoes: Mapping[str, AbstractSet[str]] | None = None,
    ) -> list[tuple[str, float]]:
        """The negatives of one query. ``ranking``: (doc id, score) best first; ``positives``:
        labelled positive doc id -> its score under the mining model; ``vetoes``: a miner's own
        filters, name -> the doc ids it drops, applied after the ones above (at the same ranks,
        counted under their names). Drops are added to ``drops``."""
        first, last = self.rank_range
        floor = min(positives.values()) if positives else None
        kept = []
        for rank, (doc_id, score) in enumerate(ranking, start=1):
            if rank > last:
                break
            if doc_id in positives:
                if self.exclude_positives:
                    drops["positive"] += 1
                    continue
            if rank < first:
                continue
            reason = self._filtered(score, floor) or next(
                (name for name, vetoed in (vetoes or {}).items() if doc_id in vetoed), None)
            if reason:
                drops[reason] += 1
                continue
            kept.append((doc_id, score))
        if self.sampling == "random" and len(kept) > self.num_negatives:
            return sorted(rng.sample(kept, self.num_negatives), key=lambda pair: -pair[1])
        return kept[: self.num_negatives]

    def _filtered(self, score: float, positive: float | None) -> str | None:
        if self.max_score is not None and score > self.max_score:
            return "max_score"
        if positive is not None:
            if self.absolute_margin is not None and score > positive - self.absolute_margin:
                return "absolute_margin"
            if self.relative_margin is not None and score > positive * (1 - self.relative_margin):
                return "relative_margin"
        return None


def _rank_window_problem(window: Any) -> str | None:
    """``[first, last]``: ranks first..last of the ranking, 1-based and inclusive."""
    if len(window) != 2:
        return f"must be [first, last], got {list(window)}"
    first, last = window
    if not 1 <= first <= last:
        return f"must be [first, last] with 1 <= first <= last, got {list(window)}"
    return None
