from retrieval_lab.data.beir import (
    BeirDataset,
    Document,
    document_text,
    load_beir,
    load_corpus,
    load_qrels,
    load_queries,
)
from retrieval_lab.data.download import BEIR_MD5, download_beir

__all__ = [
    "BEIR_MD5",
    "BeirDataset",
    "Document",
    "document_text",
    "download_beir",
    "load_beir",
    "load_corpus",
    "load_qrels",
    "load_queries",
]
