"""Dense negatives (ANCE/STAR's static ones, RocketQA's first step): the top documents of each
training query under a bi-encoder, searched exactly with the pipeline's faiss code. The corpus
embeddings come from the embedding cache, so mining with the model a run starts from reuses the
encoding that the zero-shot evaluation of that model already paid for."""

from pathlib import Path
from typing import Any

import numpy as np

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.embedding_cache import corpus_embeddings, model_fingerprint
from retrieval_lab.encoding import encode_texts
from retrieval_lab.index import FlatIndex
from retrieval_lab.mining.miner import Miner, Ranking
from retrieval_lab.mining.selection import NegativeSelection
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.search import search


class DenseMiner(Miner):
    """Args: ``selection``, ``seed``; ``model``: a :class:`BiEncoder` or the path of an exported
    one; ``cache_dir``: the embedding cache; ``batch_size``, ``progress``: for encoding."""

    def __init__(self, selection: NegativeSelection, model: BiEncoder | str, cache_dir: str,
                 seed: int = 0, batch_size: int = 64, progress: bool = False) -> None:
        super().__init__(selection, seed)
        self.model = model if isinstance(model, BiEncoder) else BiEncoder(name_or_path=str(model))
        self.cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        self.progress = progress

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "dense", "model_sha256": model_fingerprint(self.model)}

    def rank(
        self, dataset: BeirDataset, queries: dict[str, str], positives: dict[str, list[str]],
        doc_template: str, depth: int,
    ) -> tuple[dict[str, Ranking], dict[str, dict[str, float]]]:
        self.model.eval()
        corpus = corpus_embeddings(self.model, dataset, doc_template, self.cache_dir,
                                   self.batch_size, progress=self.progress)
        index = FlatIndex(corpus.embeddings.shape[1])
        index.build(corpus.embeddings)
        query_ids = list(queries)
        embeddings = encode_texts(self.model, list(queries.values()), "query", self.batch_size, self.progress)
        run = search(index, embeddings, query_ids, corpus.doc_ids, depth)
        rows = {doc_id: row for row, doc_id in enumerate(corpus.doc_ids)}
        positive_scores = {}
        for query_id, query_embedding in zip(query_ids, embeddings):
            docs = positives[query_id]
            scores = np.asarray(corpus.embeddings[[rows[d] for d in docs]]) @ query_embedding
            positive_scores[query_id] = dict(zip(docs, scores.tolist()))
        return {q: list(run[q].items()) for q in query_ids}, positive_scores
