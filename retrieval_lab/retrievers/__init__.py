from retrieval_lab.retrievers.base import Retrieval, Retriever
from retrieval_lab.retrievers.dense import DenseRetriever

__all__ = ["DenseRetriever", "Retrieval", "Retriever"]
