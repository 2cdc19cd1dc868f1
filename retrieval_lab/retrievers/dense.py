"""Dense retrieval: a bi-encoder embeds the queries, a vector index finds their nearest documents."""

import time
from pathlib import Path
from typing import Any

from retrieval_lab.embedding_cache import CorpusEmbeddings
from retrieval_lab.index.base import Index
from retrieval_lab.index_profile import profile_index
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.query_embedding_cache import query_embeddings
from retrieval_lab.retrievers.base import Retrieval, Retriever
from retrieval_lab.search import search


class DenseRetriever(Retriever):
    """``index`` over ``corpus`` (the model's document embeddings: their doc ids name the rows;
    the embeddings themselves, when still cached, give recall against exact search). Queries are
    encoded ``batch_size`` at a time, through the query embedding cache under ``cache_dir``
    (None: encoded every time)."""

    def __init__(self, model: BiEncoder, index: Index, corpus: CorpusEmbeddings, batch_size: int = 64,
                 progress: bool = False, cache_dir: Path | None = None) -> None:
        self.model = model
        self.index = index
        self.corpus = corpus
        self.batch_size = batch_size
        self.progress = progress
        self.cache_dir = cache_dir

    @property
    def kind(self) -> str:
        return self.index.kind

    def retrieve(self, queries: dict[str, str], k: int) -> Retrieval:
        embeddings = query_embeddings(self.model, queries, self.cache_dir, self.batch_size, self.progress)
        start = time.perf_counter()
        run = search(self.index, embeddings, list(queries), self.corpus.doc_ids, k)
        return Retrieval(run, time.perf_counter() - start, embeddings)

    def profile(self, queries: dict[str, str], retrieval: Retrieval, k: int,
                latency_queries: int) -> dict[str, Any]:
        return profile_index(self.index, self.corpus.embeddings, retrieval.query_embeddings, k,
                             retrieval.seconds, latency_queries=latency_queries)
