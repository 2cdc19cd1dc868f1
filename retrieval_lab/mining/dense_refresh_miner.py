"""ANCE-style negatives: dense negatives mined before training, then re-mined every N optimizer
steps with the model being trained (:class:`retrieval_lab.mining.refresh.NegativeRefresh`)."""

import copy
from typing import Any

import pytorch_lightning as pl

from retrieval_lab.config.rules import Rule
from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.mining.dense_miner import DenseMiner
from retrieval_lab.mining.refresh import NegativeRefresh


class DenseRefreshMiner(DenseMiner):
    """:class:`DenseMiner`, plus ``refresh_every_n_steps``: the refresh interval. The refreshes
    (step, seconds, drops, share changed) go into the run record's ``mining.refreshes``."""

    name = "dense_refresh"
    changes_during_training = True
    rules = (*DenseMiner.rules,
             Rule("miner.refresh_every_n_steps", lambda run: run["miner"].get("refresh_every_n_steps", 1) >= 1,
                  "dense_refresh needs a number of steps >= 1"),
             Rule("data.num_workers", lambda run: not run["data"]["num_workers"],
                  "miner=dense_refresh swaps negatives in the main process; set data.num_workers=0"))

    def __init__(self, refresh_every_n_steps: int = 200, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if refresh_every_n_steps < 1:
            raise ValueError(f"refresh_every_n_steps must be >= 1, got {refresh_every_n_steps}")
        self.refresh_every_n_steps = refresh_every_n_steps
        self._refresh: NegativeRefresh | None = None

    def callbacks(self, dataset: BeirDataset, split: str, doc_template: str) -> list[pl.Callback]:
        uncached = copy.copy(self)  # the model in training changes every step: nothing to cache
        uncached.cache_dir, uncached.progress = None, False
        self._refresh = NegativeRefresh(uncached, self.refresh_every_n_steps, dataset, split, doc_template)
        return [self._refresh]

    def history(self) -> dict[str, Any]:
        return {"refreshes": self._refresh.history} if self._refresh is not None else {}
