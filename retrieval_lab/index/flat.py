"""Exact inner-product search with faiss."""

from retrieval_lab.index.faiss_index import FaissIndex


class FlatIndex(FaissIndex):
    """Brute-force inner-product index (``IndexFlat`` with inner product): exact top-k, the
    reference that compressed indexes are measured against. With normalized embeddings, inner
    product = cosine."""

    kind = "flat"

    def __init__(self, dim: int, device: str = "cpu") -> None:
        super().__init__(dim, "Flat", device=device)
        self.params = {}
