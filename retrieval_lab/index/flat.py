"""Exact inner-product search with faiss."""

from pathlib import Path

import faiss
import numpy as np


class FlatIndex:
    """Brute-force inner-product index (``faiss.IndexFlatIP``): exact top-k, the reference that
    compressed indexes are measured against. With normalized embeddings, inner product = cosine."""

    def __init__(self, dim: int) -> None:
        self.faiss_index = faiss.IndexFlatIP(dim)

    @property
    def size(self) -> int:
        return self.faiss_index.ntotal

    def add(self, embeddings: np.ndarray) -> None:
        self.faiss_index.add(np.ascontiguousarray(embeddings, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and row numbers [n_queries, min(k, size)], best first."""
        k = min(k, self.size)
        return self.faiss_index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def save(self, path: str | Path) -> None:
        faiss.write_index(self.faiss_index, str(path))
