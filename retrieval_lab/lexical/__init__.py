"""Lexical retrieval: text analysis and BM25 (bm25s), searched by query text instead of vectors."""

from retrieval_lab.lexical.analyzer import Analyzer
from retrieval_lab.lexical.bm25 import BM25Index, corpus_sha256

__all__ = ["Analyzer", "BM25Index", "corpus_sha256"]
