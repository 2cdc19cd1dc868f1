from retrieval_lab.retrievers.ance_prf import AncePRF
from retrieval_lab.retrievers.base import Retrieval, Retriever
from retrieval_lab.retrievers.dense import DenseRetriever
from retrieval_lab.retrievers.hybrid import CompositeRetrieval, Fusion, HybridIndex, HybridRetriever
from retrieval_lab.retrievers.prf import AveragePRF, Rocchio, VectorPRF

__all__ = ["AncePRF", "AveragePRF", "CompositeRetrieval", "DenseRetriever", "Fusion", "HybridIndex", "HybridRetriever",
           "Retrieval", "Retriever", "Rocchio", "VectorPRF"]
