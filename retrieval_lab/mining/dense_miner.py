"""Dense negatives (ANCE/STAR's static ones, RocketQA's first step): the top documents of each
training query under a bi-encoder, searched exactly with the pipeline's faiss code. The corpus
embeddings come from the embedding cache, so mining with the model a run starts from reuses the
encoding that the zero-shot evaluation of that model already paid for."""

from pathlib import Path
from typing import Any

import numpy as np

from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.embedding_cache import corpus_embeddings, model_fingerprint
from retrieval_lab.encoding import encode_texts
from retrieval_lab.index import FlatIndex
from retrieval_lab.mining.miner import Miner, Ranking
from retrieval_lab.mining.selection import NegativeSelection
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.search import search


class DenseMiner(Miner):
    """Args: ``selection``, ``seed``; ``model``: a :class:`BiEncoder` or the path of an exported
    one; ``cache_dir``: the embedding cache (None encodes the corpus afresh, as a refresh with a
    model in training must); ``batch_size``, ``progress``: for encoding."""

    def __init__(self, selection: NegativeSelection, model: BiEncoder | str, cache_dir: str | Path | None,
                 seed: int = 0, batch_size: int = 64, progress: bool = False) -> None:
        super().__init__(selection, seed)
        self.model = model if isinstance(model, BiEncoder) else BiEncoder(name_or_path=str(model))
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.batch_size = batch_size
        self.progress = progress

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "dense", "model_sha256": model_fingerprint(self.model)}

    def rank(
        self, dataset: BeirDataset, queries: dict[str, str], positives: dict[str, list[str]],
        doc_template: str, depth: int,
    ) -> tuple[dict[str, Ranking], dict[str, dict[str, float]]]:
        training = self.model.training
        self.model.eval()
        try:
            doc_ids, doc_embeddings = self._corpus(dataset, doc_template)
            query_ids = list(queries)
            embeddings = encode_texts(self.model, list(queries.values()), "query", self.batch_size, self.progress)
        finally:
            self.model.train(training)
        index = FlatIndex(doc_embeddings.shape[1])
        index.build(doc_embeddings)
        run = search(index, embeddings, query_ids, doc_ids, depth)
        rows = {doc_id: row for row, doc_id in enumerate(doc_ids)}
        positive_scores = {}
        for query_id, query_embedding in zip(query_ids, embeddings):
            docs = positives[query_id]
            scores = np.asarray(doc_embeddings[[rows[d] for d in docs]]) @ query_embedding
            positive_scores[query_id] = dict(zip(docs, scores.tolist()))
        return {q: list(run[q].items()) for q in query_ids}, positive_scores

    def _corpus(self, dataset: BeirDataset, doc_template: str) -> tuple[list[str], np.ndarray]:
        if self.cache_dir is not None:
            cached = corpus_embeddings(self.model, dataset, doc_template, self.cache_dir,
                                       self.batch_size, progress=self.progress)
            return cached.doc_ids, cached.embeddings
        texts = [document_text(doc, doc_template) for doc in dataset.corpus.values()]
        return list(dataset.corpus), encode_texts(self.model, texts, "doc", self.batch_size, self.progress)
