class DataError(Exception):
    """Bad or missing input data; the message names the file (and line)."""


class StorageError(OSError):
    """A write failed for lack of space (ENOSPC, a quota, SIGBUS on a memory-mapped file); the
    message names the path. What was there before the write is left intact."""

    def __str__(self) -> str:
        return str(self.strerror)  # the message alone, not OSError's "[Errno 28] ..." prefix


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step (and the checkpoint kept)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file."""
