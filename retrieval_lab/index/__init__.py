from retrieval_lab.index.base import Index, IndexMismatchError, recall_vs_exact
from retrieval_lab.index.binary import BinaryIndex
from retrieval_lab.index.faiss_index import (
    FaissIndex,
    HNSWIndex,
    IVFFlatIndex,
    IVFPQIndex,
    OPQPQIndex,
    SQ8Index,
)
from retrieval_lab.index.flat import FlatIndex
from retrieval_lab.index.streamed_flat import StreamedFlatIndex

__all__ = [
    "BinaryIndex",
    "FaissIndex",
    "FlatIndex",
    "HNSWIndex",
    "IVFFlatIndex",
    "IVFPQIndex",
    "Index",
    "IndexMismatchError",
    "OPQPQIndex",
    "SQ8Index",
    "StreamedFlatIndex",
    "recall_vs_exact",
]
