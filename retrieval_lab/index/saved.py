"""A saved index directory, whatever the index: its own files, then ``index.json`` (kind,
parameters, size, and the caller's metadata) written last. ``index.json`` is removed first, so
an interrupted save leaves a directory without one, which every load refuses; a load names the
first field that differs from what the caller expects."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retrieval_lab.atomic import atomic_write_json
from retrieval_lab.run_layout import INDEX_INFO_FILE as INFO_FILE


class IndexMismatchError(ValueError):
    """A saved index does not match what the caller expects (another model, corpus or dim)."""


def first_difference(key: str, got: Any, want: Any) -> tuple[str | None, Any, Any]:
    """(dotted key, saved, expected) of the first difference between saved metadata and what a
    load expects, compared as JSON values; (None, ...) when equal."""
    if isinstance(got, dict) and isinstance(want, dict):
        for sub in list(want) + [s for s in got if s not in want]:
            where, g, w = first_difference(f"{key}.{sub}", got.get(sub), want.get(sub))
            if where is not None:
                return where, g, w
        return None, got, want
    same = json.loads(json.dumps(got)) == json.loads(json.dumps(want))
    return (None if same else key), got, want


def save_index_dir(directory: str | Path, info: dict[str, Any], metadata: dict[str, Any],
                   write_files: Callable[[Path], None]) -> None:
    """``write_files(directory)`` writes the index's own files (each atomically; it may add to
    ``info``, e.g. their size), then ``index.json`` holds ``info`` and ``metadata``, which may not
    overwrite the index's own fields."""
    clash = sorted(info.keys() & metadata.keys())
    if clash:
        raise ValueError(f"metadata may not set the index's own fields {clash}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / INFO_FILE).unlink(missing_ok=True)
    write_files(directory)
    atomic_write_json(directory / INFO_FILE, {**info, **metadata})


def read_index_info(directory: str | Path) -> dict[str, Any]:
    """The ``index.json`` of a complete saved index, else :class:`IndexMismatchError`."""
    path = Path(directory) / INFO_FILE
    if not path.is_file():
        raise IndexMismatchError(f"no saved index in {directory} ({INFO_FILE} is missing)")
    return json.loads(path.read_text())


def check_expected(directory: str | Path, info: dict[str, Any], expected: dict[str, Any]) -> None:
    """:class:`IndexMismatchError` naming the first key of ``expected`` (compared as JSON values)
    that differs from the saved ``info``."""
    for key, want in expected.items():
        where, got, want = first_difference(key, info.get(key), want)
        if where is not None:
            raise IndexMismatchError(f"index in {directory} has {where}={got!r}, expected {want!r}")
