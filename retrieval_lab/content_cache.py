"""One content-addressed cache for everything computed once and reused: corpus embeddings, mined
negatives, teacher scores.

Each of them needs the same three things done the same way, so they are done here once: a key
that is the hash of what determines the data (``key``), a hit only for a complete entry
(``lookup``), and a write that a crash or a parallel job cannot leave half done (``store``: the
data first, atomically, then the JSON sidecar, last, so that data without its sidecar is never
taken for an entry).

An entry is a file ``<root>/<kind>/<key><suffix>`` with its sidecar ``<key>.json`` beside it, or
(``suffix="/"``) a directory ``<root>/<kind>/<key>/`` with its sidecar ``meta.json`` inside, filled
in a temporary directory and moved into place whole.
"""

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from retrieval_lab.atomic import atomic_path, atomic_write_json

DIRECTORY = "/"  # the suffix of an entry that is a directory
DIRECTORY_SIDECAR = "meta.json"

# Writes an entry's data into the (temporary) path it is given; may return fields (e.g. timings)
# to add to the sidecar record.
DataWriter = Callable[[Path], Mapping[str, Any] | None]


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

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The sidecar record of the entry ``key``, or None unless both its data and sidecar exist."""
        data, sidecar = self.paths(key)
        if not (data.exists() and sidecar.is_file()):
            return None
        return json.loads(sidecar.read_text())

    def store(self, key: str, record: Mapping[str, Any], write_data: DataWriter) -> bool:
        """Writes the entry: ``write_data`` fills a temporary path that replaces the data path when
        it returns; the sidecar (``record`` and what ``write_data`` returned) is written after it.
        An error leaves no entry and no temporary files. Returns False when the entry is a
        directory that a parallel writer completed first (its entry is kept; this one dropped)."""
        data, sidecar = self.paths(key)
        if not self.is_directory:
            with atomic_path(data) as tmp:
                extra = write_data(tmp)
            atomic_write_json(sidecar, {**record, **(extra or {})})
            return True
        # A directory is filled beside its place and renamed into it, sidecar last. Unlike
        # atomic.atomic_directory, a complete entry already in place is kept, never replaced:
        # another job may be reading it.
        data.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=data.parent, prefix=f".{key}."))
        try:
            extra = write_data(tmp)
            atomic_write_json(tmp / DIRECTORY_SIDECAR, {**record, **(extra or {})})
            try:
                tmp.rename(data)
            except OSError:
                if not sidecar.is_file():
                    raise
                return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return True
