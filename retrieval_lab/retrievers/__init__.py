from retrieval_lab.retrievers.base import Retrieval, Retriever
from retrieval_lab.retrievers.dense import DenseRetriever
from retrieval_lab.retrievers.hybrid import CompositeRetrieval, Fusion, HybridIndex, HybridRetriever

__all__ = ["CompositeRetrieval", "DenseRetriever", "Fusion", "HybridIndex", "HybridRetriever", "Retrieval",
           "Retriever"]
