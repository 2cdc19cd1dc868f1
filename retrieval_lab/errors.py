class DataError(Exception):
    """Bad or missing input data; the message names the file (and line)."""


class StorageError(OSError):
    """A write failed for lack of space (ENOSPC, a quota, SIGBUS on a memory-mapped file); the
    message names the path. What was there before the write is left intact."""
