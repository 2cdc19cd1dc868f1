"""Checkpoints that a run resumes from exactly: ``<run>/checkpoints/last.ckpt``.

:class:`ResumeCheckpoint` writes it every ``every_n_steps`` optimizer steps, at the end of
training, and when the run is stopped by SIGTERM (Lightning raises ``SIGTERMException`` at the end
of the batch in progress). It saves at the start of a batch, when the previous step is complete:
its optimizer and scheduler steps taken, its progress counted. (Lightning's ModelCheckpoint saves
in ``on_train_batch_end``, before the scheduler's step of that batch, so a run resumed from it
would take its learning-rate schedule one step late.) Beside Lightning's own state (weights,
optimizer, scheduler, loops), a checkpoint holds the RNG states and the batch the run stopped at,
which the framework's data order (training.batches) needs to go on with the very next batch.

:class:`AtomicCheckpointIO` writes every checkpoint to a temp file beside it and renames it, so the
last good one is never replaced by a partial one; a full disk is a :class:`StorageError` naming
the file. It loads with ``torch.load(weights_only=True)`` (no pickled code runs) and refuses a
checkpoint that is not this framework's.
"""

import io
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from retrieval_lab.atomic import atomic_path, no_space_is_storage_error
from retrieval_lab.errors import CheckpointError
from retrieval_lab.run_layout import LAST_CHECKPOINT_FILE

log = logging.getLogger(__name__)

MARK = "retrieval_lab"  # the checkpoint key that makes a checkpoint this framework's


def rng_states() -> dict[str, Any]:
    """Every RNG a training step draws from, as tensors and plain values (``weights_only`` loads
    them; numpy's state array is stored as a tensor)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "python": random.getstate(),
              "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        # Serialized in memory first, as Lightning's own save does: torch's zip writer reports a
        # failed write (a full disk) as a RuntimeError without its errno; a plain write keeps it.
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with no_space_is_storage_error(path), atomic_path(path) as tmp:
            tmp.write_bytes(buffer.getbuffer())

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        path = Path(path)
        try:
            checkpoint = torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except Exception as err:  # a truncated file, another program's pickle
            raise CheckpointError(f"{path}: cannot be read as a checkpoint ({type(err).__name__}: "
                                  f"{str(err).splitlines()[0] if str(err) else ''})") from None
        if not isinstance(checkpoint, dict) or MARK not in checkpoint:
            raise CheckpointError(f"{path}: not a retrieval_lab checkpoint (no {MARK!r} entry); "
                                  "resume only from a run's own checkpoints/")
        return checkpoint


class ResumeCheckpoint(pl.Callback):
    """Keeps ``<dirpath>/last.ckpt`` current (see the module docstring); ``every_n_steps: 0``
    saves only at the end and on SIGTERM."""

    def __init__(self, dirpath: str, every_n_steps: int = 50) -> None:
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0, got {every_n_steps}")
        self.path = Path(dirpath) / LAST_CHECKPOINT_FILE
        self.every_n_steps = every_n_steps
        self._resumed: dict[str, Any] | None = None  # what the checkpoint resumed from said
        self.saved_step = -1

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        loop = trainer.fit_loop.epoch_loop
        checkpoint[MARK] = {"epoch": trainer.current_epoch, "batches_done": loop.batch_progress.current.completed,
                            "global_step": trainer.global_step, "logged_steps": loop._batches_that_stepped,
                            "rng": rng_states()}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        self._resumed = state = checkpoint[MARK]
        log.info("resuming at step %d: epoch %d, after its batch %d", state["global_step"], state["epoch"],
                 state["batches_done"])

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._resumed is None:
            return
        state = self._resumed
        self.saved_step = state["global_step"]
        resume_at = getattr(trainer.datamodule, "resume_at", None)
        if resume_at is None:
            raise CheckpointError("this run's data module cannot resume mid-epoch")
        resume_at(state["epoch"], state["batches_done"])

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._resumed is not None:  # the first batch after a resume: draw as the lost run would have
            set_rng_states(self._resumed["rng"])
            # Lightning counts one logging step more on a restart that is not at a batch's end
            # (training_epoch_loop.reset); the loggers' step must go on from the saved one.
            trainer.fit_loop.epoch_loop._batches_that_stepped = self._resumed["logged_steps"]
            self._resumed = None
            return
        step = trainer.global_step
        if self.every_n_steps and step and step % self.every_n_steps == 0 and step != self.saved_step:
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self.saved_step:
            self.save(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException) and trainer.global_step != self.saved_step:
            self.save(trainer)

    def save(self, trainer: pl.Trainer) -> None:
        """Writes last.ckpt, unless a weight is no longer finite: the last good checkpoint is kept
        (the loss of the next step is NaN, and training stops there)."""
        if not all(bool(torch.isfinite(p).all()) for p in trainer.lightning_module.parameters()):
            log.warning("step %d: weights are not finite; keeping the checkpoint of step %d",
                        trainer.global_step, self.saved_step)
            return
        trainer.save_checkpoint(self.path, weights_only=False)
        self.saved_step = trainer.global_step
        log.info("checkpoint at step %d: %s", trainer.global_step, self.path)
