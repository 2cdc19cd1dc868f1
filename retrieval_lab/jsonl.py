"""Reading JSON-lines files with errors that name the file and line."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from retrieval_lab.errors import DataError


def open_text(path: Path) -> TextIO:
    """``path`` opened as UTF-8 text; a DataError naming it if it cannot be read."""
    try:
        return Path(path).open(encoding="utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; a line that is not a JSON
    object is a DataError ``<path>:<line>: ...``."""
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj
