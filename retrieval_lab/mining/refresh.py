"""ANCE's asynchronous negatives, synchronously (Xiong et al., 2021, "Approximate Nearest Neighbor
Negative Contrastive Learning for Dense Text Retrieval"): every N optimizer steps the model being
trained re-encodes the corpus and re-mines, and the data module serves the fresh negatives from the
next batch on, in the same run.

Each refresh is logged (``mining/refresh/*``) and kept in :attr:`NegativeRefresh.history` (step,
seconds, drop counts, share of negatives that changed), which the train stage writes into the run
record. With several processes rank 0 mines and broadcasts the negatives (every rank would mine
the same ones from the same synchronised weights); the data module must build batches in the main
process (``data.num_workers=0``), where the swap is seen at once. The negatives in use and the history are part of the run's checkpoint
(:meth:`NegativeRefresh.state_dict`), so a resumed run trains on the negatives the lost one had.
"""

import logging
import time
from typing import Any

import pytorch_lightning as pl
import torch.distributed as dist

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.mining.dense_miner import DenseMiner
from retrieval_lab.mining.miner import MiningResult
from retrieval_lab.mining.negatives_file import Negatives
from retrieval_lab.training.cross_device import world

log = logging.getLogger(__name__)


def changed_share(old: Negatives, new: Negatives) -> float:
    """Share of the new negatives that were not already negatives of the same query."""
    total = sum(len(docs) for docs in new.values())
    kept = sum(len({d for d, _ in docs} & {d for d, _ in old.get(q, [])}) for q, docs in new.items())
    return (total - kept) / total if total else 0.0


class NegativeRefresh(pl.Callback):
    """Every ``every_n_steps`` steps, ``miner`` re-mines with the model being trained (seeded with
    its seed plus the step) and the data module takes the training set with the new negatives."""

    def __init__(self, miner: DenseMiner, every_n_steps: int, dataset: BeirDataset, split: str,
                 doc_template: str) -> None:
        if every_n_steps < 1:
            raise ValueError(f"miner.refresh_every_n_steps must be >= 1, got {every_n_steps}")
        self.miner = miner
        self.every_n_steps = every_n_steps
        self.dataset = dataset
        self.split = split
        self.doc_template = doc_template
        self.history: list[dict[str, Any]] = []
        self._negatives: Negatives | None = None  # the last refresh's
        self._restored: Negatives | None = None

    def state_dict(self) -> dict[str, Any]:
        negatives = None if self._negatives is None else {q: [list(n) for n in docs]
                                                          for q, docs in self._negatives.items()}
        return {"history": self.history, "negatives": negatives}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state["history"])
        if state["negatives"] is not None:
            self._restored = {q: [tuple(n) for n in docs] for q, docs in state["negatives"].items()}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._restored is not None:  # resumed after a refresh: serve what the lost run served
            self._use(trainer.datamodule, self._restored, self.history[-1]["step"])
            self._restored = None

    def _use(self, datamodule: Any, negatives: Negatives, step: int) -> None:
        current = datamodule.training_set
        datamodule.use(current.with_negatives(negatives, current.negatives_per_pair, self.miner.seed + step))
        self._negatives = negatives

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if step == 0 or step % self.every_n_steps or (self.history and self.history[-1]["step"] == step):
            return
        datamodule = trainer.datamodule
        start = time.perf_counter()
        result = self.mined(pl_module.model, step)
        changed = changed_share(datamodule.training_set.negatives, result.negatives)
        self._use(datamodule, result.negatives, step)
        entry = {"step": step, "seconds": round(time.perf_counter() - start, 2), "changed": round(changed, 4),
                 **result.summary()}
        self.history.append(entry)
        log.info("refreshed negatives at step %d in %.1f s: %.1f%% changed; dropped %s",
                 step, entry["seconds"], 100 * changed, result.drops)
        pl_module.log_dict({"mining/refresh/changed": changed, "mining/refresh/seconds": entry["seconds"]})

    def mined(self, model: Any, step: int) -> MiningResult:
        """The negatives of the refresh at ``step``, mined on rank 0 alone and broadcast to the
        other ranks."""
        rank, size = world()
        result = [self.miner.mine(self.dataset, self.split, self.doc_template, model, seed=self.miner.seed + step)
                  if rank == 0 else None]
        if size > 1:
            dist.broadcast_object_list(result, src=0)
            log.info("negatives of step %d mined on rank 0, broadcast to %d ranks", step, size)
        return result[0]
