"""Exact inner-product search over vectors that stay on disk: a corpus larger than RAM.

:class:`FlatIndex` copies every vector into faiss's memory; this index keeps the embedding
cache's memory map (and, saved, its own ``.npy``, memory-mapped back) and searches it
``block_rows`` rows at a time with ``faiss.knn``, merging each block's top k into one with
``faiss.ResultHeap``. Resident memory is one block's scores plus the pages the kernel keeps of
the file (its page cache, which it can drop), whatever the corpus size; the results are flat's.
"""

import io
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from retrieval_lab.config.rules import Param, at_least
from retrieval_lab.index.base import Index


class StreamedFlatIndex(Index):
    """Args: ``block_rows``: corpus rows scored at a time (memory per query block:
    ``queries x block_rows`` scores)."""

    rules = (Param("block_rows", at_least(1)),)

    kind = "flat_streamed"
    file_name = "vectors.npy"

    def __init__(self, dim: int, block_rows: int = 100_000) -> None:
        super().__init__(dim)
        if block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {block_rows}")
        self.block_rows = block_rows
        self.params: dict[str, Any] = {"block_rows": block_rows}
        self.vectors = np.empty((0, dim), np.float32)

    @property
    def size(self) -> int:
        return len(self.vectors)

    def nbytes(self) -> int:
        return len(self._header()) + int(self.vectors.nbytes)

    def _header(self) -> bytes:
        """The ``.npy`` header of the vectors, as :meth:`_write` writes it."""
        out = io.BytesIO()
        np.lib.format.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False,
                                                   "shape": self.vectors.shape})
        return out.getvalue()

    def _build(self, x: np.ndarray) -> None:
        self.vectors = x  # the caller's array (the cache's memory map): no copy

    def _search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        heap = faiss.ResultHeap(len(q), k, keep_max=True)
        for begin in range(0, self.size, self.block_rows):
            block = np.ascontiguousarray(self.vectors[begin : begin + self.block_rows])
            scores, rows = faiss.knn(q, block, min(k, len(block)), metric=faiss.METRIC_INNER_PRODUCT)
            heap.add_result(np.ascontiguousarray(scores, dtype=np.float32),
                            np.ascontiguousarray(np.where(rows >= 0, rows + begin, -1), dtype=np.int64))
        heap.finalize()
        return heap.D, heap.I

    def _write(self, path: Path) -> None:
        with open(path, "wb") as out:
            out.write(self._header())
            for begin in range(0, self.size, self.block_rows):
                out.write(np.ascontiguousarray(self.vectors[begin : begin + self.block_rows]).tobytes())

    def _read(self, path: Path, info: dict[str, Any]) -> None:
        self.vectors = np.load(path, mmap_mode="r")
