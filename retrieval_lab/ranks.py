"""The processes of a run that trains nothing. ``trainer=ddp_sim stages=[index,evaluate]``:
training would start the trainer's processes at ``fit``; without it, Lightning Fabric's launcher
starts the same ones (it runs the command again once per extra local rank, with the environment
that ``torch.distributed`` reads, as Lightning's trainer does), so that they share the corpus
encoding. Rank 0 alone then indexes and evaluates."""

import logging
from collections.abc import Mapping
from typing import Any

from lightning_fabric import Fabric

from retrieval_lab.training.cross_device import world

log = logging.getLogger(__name__)

# Lightning Trainer settings that choose the processes (the rest: precision, epochs, ...).
PROCESS_KEYS = ("accelerator", "strategy", "devices", "num_nodes")


def start_ranks(trainer: Mapping[str, Any], model: Any) -> None:
    """Starts the processes ``trainer`` asks for (its accelerator, strategy, devices, nodes)
    where there is more than one and none was started yet, and moves ``model`` to this rank's
    device; a no-op for one process."""
    if world()[1] > 1:
        return
    fabric = Fabric(**{key: trainer[key] for key in PROCESS_KEYS if trainer.get(key) is not None})
    if fabric.world_size == 1:
        return
    fabric.launch()
    log.info("rank %d of %d started on %s", fabric.global_rank, fabric.world_size, fabric.device)
    if model is not None:
        model.to(fabric.device)
