"""Stopping on a signal without losing the run: SIGTERM (what a scheduler sends on preemption or
at its time limit; SLURM's ``--signal=TERM@<seconds>`` sends it ahead of the limit) ends the run
as ``interrupted`` with exit code 143, never as a success.

Outside training, the handler raises :class:`RunInterrupted` where the main thread is, and the
run record is closed on the way out. During training it lets Lightning's own handler act: the
batch in progress finishes, Lightning raises ``SIGTERMException`` (a ``SystemExit``, so a bare
``sys.exit(0)`` would count it a success), the checkpoint callback saves, and the train stage
turns it into :class:`RunInterrupted`.
"""

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_training = False


class RunInterrupted(BaseException):
    """The run was stopped by ``signum``; a BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` swallows it."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if not _training:
        raise RunInterrupted(signum, f"stopped by {signal.Signals(signum).name}")


def install() -> None:
    """SIGTERM stops the run as interrupted (call in the main thread, before any work)."""
    signal.signal(signal.SIGTERM, _on_sigterm)


@contextmanager
def lightning_handles_sigterm() -> Iterator[None]:
    """While Lightning trains, SIGTERM is left to it (it stops at the end of the batch)."""
    global _training
    _training = True
    try:
        yield
    finally:
        _training = False
