"""One content-addressed cache for everything computed once and reused: corpus embeddings, mined
negatives, teacher scores.

Each of them needs the same things done the same way, so they are done here once:

- a key that is the hash of what determines the data (``key``);
- a sidecar that says what the data holds: the size and sha256 of each data file (``files``)
  besides the kind's own record (what made it, counts), checked on every read (``lookup``). An
  entry that fails the check (a file missing, truncated, overwritten; no sidecar; a sidecar from
  before checksums were kept; what the kind's loader refuses) is reported in one WARNING line,
  removed, and built again by the ordinary miss path: never used, never a crash;
- a per-key lock (``flock`` on ``<key>.lock``) held while checking and building (``fetch``), so
  that parallel jobs needing one entry build it once and the others wait and reuse it; the kernel
  drops the lock of a process that dies, so a crashed holder blocks nobody (lock files stay:
  removing one would race with a process about to take it);
- a write that a crash cannot leave half done (``store``: the data first, into a temp path moved
  into place, then the sidecar), and that a full disk turns into a StorageError naming the path.

An entry is a file ``<root>/<kind>/<key><suffix>`` with its sidecar ``<key>.json`` beside it, or
(``suffix="/"``) a directory ``<root>/<kind>/<key>/`` with its sidecar ``meta.json`` inside, filled
in a temporary directory and moved into place whole.
"""

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from retrieval_lab.atomic import atomic_path, atomic_write_json, fresh_directory, no_space_is_storage_error
from retrieval_lab.errors import DataError
from retrieval_lab.provenance import file_sha256

log = logging.getLogger(__name__)

DIRECTORY = "/"  # the suffix of an entry that is a directory
DIRECTORY_SIDECAR = "meta.json"
FILES = "files"  # the sidecar field: data file name -> {"bytes": size, "sha256": hex digest}

T = TypeVar("T")
# Writes an entry's data into the (temporary) path it is given; may return fields (e.g. timings,
# counts) to add to the sidecar record.
DataWriter = Callable[[Path], Mapping[str, Any] | None]
# Reads an entry's data (its path) checked against its sidecar record; raises CorruptEntry.
Loader = Callable[[Path, dict[str, Any]], T]
# On a miss: the record of what makes the entry, and the writer of its data.
Builder = Callable[[], tuple[Mapping[str, Any], DataWriter]]


class CorruptEntry(ValueError):
    """An entry's data disagrees with its sidecar; the message says how."""


@dataclass
class Entry(Generic[T]):
    path: Path  # the data: file or directory
    record: dict[str, Any]  # the sidecar
    value: T  # what the loader read
    hit: bool  # False: built by this call


def expect_count(found: int, record: Mapping[str, Any], field: str, what: str) -> None:
    """Raises CorruptEntry unless ``found`` (say, the lines read) is the sidecar's ``field``."""
    if found != record.get(field):
        raise CorruptEntry(f"{found} {what}, its sidecar says {record.get(field)}")


def fingerprint(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


class ContentCache:
    def __init__(self, root: str | Path, kind: str = "", suffix: str = DIRECTORY):
        self.dir = Path(root) / kind
        self.suffix = suffix

    @staticmethod
    def key(parts: Mapping[str, Any]) -> str:
        """The key of the data that ``parts`` (JSON values) determine: sha256 of their sorted-key
        JSON, the first 24 hex digits."""
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]

    @property
    def is_directory(self) -> bool:
        return self.suffix == DIRECTORY

    def paths(self, key: str) -> tuple[Path, Path]:
        """The entry's data (file or directory) and its sidecar."""
        if self.is_directory:
            return self.dir / key, self.dir / key / DIRECTORY_SIDECAR
        return self.dir / f"{key}{self.suffix}", self.dir / f"{key}.json"

    def data_files(self, key: str) -> dict[str, Path]:
        """The files the sidecar checksums, by the name it records them under."""
        data, _ = self.paths(key)
        if not self.is_directory:
            return {data.name: data}
        return {p.name: p for p in sorted(data.iterdir()) if p.is_file() and p.name != DIRECTORY_SIDECAR}

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Holds the key's lock (``<dir>/<key>.lock``, exclusive) while inside."""
        lock = self.dir / f"{key}.lock"
        with no_space_is_storage_error(lock):
            self.dir.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
            except PermissionError:  # another user's lock file, not writable by us: flock needs no write access
                fd = os.open(lock, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another process to finish %s", self.paths(key)[0])
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def verified_record(self, key: str) -> dict[str, Any]:
        """The entry's sidecar record, once its data files agree with it in size and sha256; else
        CorruptEntry saying what is wrong. For an entry of which the data or the sidecar exists."""
        data, sidecar = self.paths(key)
        if not data.exists():
            raise CorruptEntry("its data is missing")
        if not sidecar.is_file():
            raise CorruptEntry(f"it has no sidecar {sidecar.name}")
        try:
            record = json.loads(sidecar.read_text())
        except (ValueError, UnicodeDecodeError):
            raise CorruptEntry(f"its sidecar {sidecar.name} is not JSON") from None
        expected = record.get(FILES)
        if not isinstance(expected, dict):
            raise CorruptEntry("it was written before checksums were kept: unverifiable")
        found = self.data_files(key)
        for name, want in expected.items():
            if name not in found:
                raise CorruptEntry(f"{name} is missing")
            size = found[name].stat().st_size
            if size != want["bytes"]:
                raise CorruptEntry(f"{name} is {size} bytes, its sidecar says {want['bytes']}")
            if file_sha256(found[name]) != want["sha256"]:
                raise CorruptEntry(f"{name} does not match its sidecar's sha256")
        return record

    def lookup(self, key: str, load: Loader[T]) -> Entry[T] | None:
        """The entry ``key`` read by ``load`` once its files agree with its sidecar; None on a
        miss. A bad entry is reported, removed, and is a miss. Hold the key's lock around it."""
        data, sidecar = self.paths(key)
        if not (data.exists() or sidecar.exists()):
            return None
        try:
            record = self.verified_record(key)
            return Entry(data, record, load(data, record), hit=True)
        except (CorruptEntry, DataError) as err:
            log.warning("bad cache entry %s: %s; removed, it will be built again", data, err)
        self.remove(key)
        return None

    def remove(self, key: str) -> None:
        """Removes the entry, sidecar first (so that what is left is never taken for an entry),
        and any temp files a killed writer left (only the lock holder writes them)."""
        data, sidecar = self.paths(key)
        if self.is_directory:
            shutil.rmtree(data, ignore_errors=True)
        else:
            sidecar.unlink(missing_ok=True)
            data.unlink(missing_ok=True)
        for stale in self.dir.glob(f".{key}.*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)

    def store(self, key: str, record: Mapping[str, Any], write_data: DataWriter) -> dict[str, Any]:
        """Writes the entry: ``write_data`` fills a temporary path that replaces the data path when
        it returns; the sidecar (``record``, what ``write_data`` returned, and the checksums of the
        data files) is written after it. An error leaves no entry and no temporary files; lack of
        space is a StorageError naming the path. Returns the sidecar record. Hold the key's lock."""
        data, sidecar = self.paths(key)
        if not self.is_directory:
            with atomic_path(data) as tmp:
                extra = write_data(tmp)
                files = {data.name: fingerprint(tmp)}
            full = {**record, **(extra or {}), FILES: files}
            atomic_write_json(sidecar, full)
            return full
        # A directory is filled beside its place and renamed into it, sidecar (inside) last.
        with no_space_is_storage_error(data):
            tmp = fresh_directory(data)
            try:
                extra = write_data(tmp)
                files = {p.name: fingerprint(p) for p in sorted(tmp.iterdir()) if p.is_file()}
                full = {**record, **(extra or {}), FILES: files}
                atomic_write_json(tmp / DIRECTORY_SIDECAR, full)
                tmp.rename(data)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return full

    def fetch(self, key: str, load: Loader[T], build: Builder) -> Entry[T]:
        """The entry ``key``: read (``lookup``) or, on a miss, built (``build``), stored and read,
        all under the key's lock, so that one process builds what parallel ones need."""
        with self.locked(key):
            entry = self.lookup(key, load)
            if entry is not None:
                return entry
            self.remove(key)  # temp files a killed writer left
            record, write_data = build()
            record = self.store(key, record, write_data)
            data, _ = self.paths(key)
            return Entry(data, record, load(data, record), hit=False)
