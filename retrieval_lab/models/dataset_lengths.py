"""A dataset's own truncation lengths (``data.query_max_length`` / ``data.doc_max_length``) on
the model while that dataset is encoded; null keeps the model's. The embedding cache's key holds
the length, so embeddings of one length are never taken for another's."""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any


@contextmanager
def dataset_lengths(model: Any, data: Mapping[str, Any]) -> Iterator[None]:
    lengths = getattr(getattr(model, "tokenization", None), "max_lengths", None)
    wanted = {side: data.get(f"{side}_max_length") for side in ("query", "doc")}
    wanted = {side: length for side, length in wanted.items() if length is not None}
    if lengths is None or not wanted:
        yield
        return
    saved = dict(lengths)
    lengths.update(wanted)
    try:
        yield
    finally:
        lengths.clear()
        lengths.update(saved)
