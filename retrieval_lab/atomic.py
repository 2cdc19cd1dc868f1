"""Atomic file writes: readers see the old file or the complete new one, never half of it.

Temporary files and directories are created with the mode an ordinary ``open``/``mkdir`` gives
(0666/0777 less the umask), not ``tempfile``'s owner-only 0600/0700, so that what is moved into
place can be read by the group that shares a cache or an output directory. A write that fails for
lack of space (ENOSPC, a quota, a file size limit) raises :class:`StorageError` naming the path.
"""

import errno
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from retrieval_lab.errors import StorageError

# EFBIG: a file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) ends a write as a full disk does.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@contextmanager
def no_space_is_storage_error(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turns an OSError for lack of space, raised inside, into a StorageError naming ``path``."""
    try:
        yield
    except StorageError:
        raise
    except OSError as err:
        if err.errno not in NO_SPACE:
            raise
        raise StorageError(err.errno, f"no space to write {path}: {err.strerror}") from err


def _fresh(path: Path, suffix: str, make: Callable[[Path], None]) -> Path:
    """A new temp name ``.<name>.<random><suffix>`` beside ``path``, created by ``make``."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            make(tmp)
            return tmp
        except FileExistsError:
            continue


def _new_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def fresh_directory(path: str | os.PathLike[str]) -> Path:
    """A new empty temp directory beside ``path`` (mode 0777 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _fresh(path, "", lambda tmp: tmp.mkdir(0o777))


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temp path beside ``path`` to write to (by any writer: Python, faiss, numpy).
    On success it is synced and moved onto ``path`` with ``os.replace``; on error it is removed."""
    path = Path(path)
    with no_space_is_storage_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _fresh(path, ".tmp", _new_file)
        try:
            yield tmp
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a fresh temp directory beside ``path`` to fill; on success it replaces ``path``
    (an existing one is removed first), on error it is removed."""
    path = Path(path)
    with no_space_is_storage_error(path):
        tmp = fresh_directory(path)
        try:
            yield tmp
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")
