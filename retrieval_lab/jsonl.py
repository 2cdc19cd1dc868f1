"""Reading line files (JSON lines, TSV) with errors that name the file and line.

The files are UTF-8; a UTF-8 byte-order mark, which some BEIR files carry, is dropped (and said
once in the log) so the first line reads like the others. Lines end in LF or CRLF (JSON ignores
the CR as white space; a TSV reader strips it). A byte sequence that is not UTF-8 is a DataError
naming the file, the line and the byte, rather than a decoding traceback.
"""

import codecs
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrieval_lab.errors import DataError

log = logging.getLogger(__name__)


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, line with its ending) of each line of ``path``; a DataError
    ``<path>: cannot read`` if it cannot be opened, ``<path>:<line>: not UTF-8`` for a bad byte."""
    try:
        f = Path(path).open("rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                log.info("%s starts with a UTF-8 byte-order mark: skipped", path)
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not UTF-8: byte 0x{raw[e.start]:02x} at column {e.start + 1} "
                                "(re-encode the file as UTF-8)") from None
            yield lineno, line


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; a line that is not a JSON
    object is a DataError ``<path>:<line>: ...``."""
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj
