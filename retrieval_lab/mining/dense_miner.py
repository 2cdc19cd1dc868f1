"""Dense negatives (ANCE/STAR's static ones, RocketQA's first step): the top documents of each
training query under a bi-encoder, searched exactly with the pipeline's faiss code. The corpus
embeddings come from the embedding cache, so mining with the model a run starts from reuses the
encoding that the zero-shot evaluation of that model already paid for."""

from typing import Any

import numpy as np

from retrieval_lab.config.rules import Rule, component_class
from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.embedding_cache import EMBEDDINGS_CACHE, corpus_embeddings, model_fingerprint
from retrieval_lab.encoding import encode_texts
from retrieval_lab.index import FlatIndex
from retrieval_lab.mining.miner import RankingMiner, Ranking
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.search import search


def _run_model_embeds(run: dict[str, Any]) -> bool:
    model = component_class(run.get("model"))
    return model is None or issubclass(model, BiEncoder)


class DenseMiner(RankingMiner):
    """Args: ``model``: null (the run's model, before training), the path of an exported
    bi-encoder, or a :class:`BiEncoder` (a model config, built by Hydra); ``batch_size``,
    ``progress``: for encoding; the rest as :class:`RankingMiner`. The corpus embeddings go
    through the embedding cache (``<cache_dir>/embeddings``); without a ``cache_dir`` (a refresh,
    whose model changes after every step) the corpus is encoded afresh."""

    name = "dense"
    rules = (*RankingMiner.rules,
             Rule("miner.model",
                  lambda run: run["miner"].get("model") is not None or _run_model_embeds(run),
                  "a dense miner with no model of its own mines with the run's, which must be a bi-encoder "
                  "(the run's model scores pairs): set miner.model to a bi-encoder's path"))

    def __init__(self, model: BiEncoder | str | None = None, batch_size: int = 64, progress: bool = False,
                 **selection: Any) -> None:
        super().__init__(**selection)
        self.model = BiEncoder(name_or_path=model) if isinstance(model, str) else model
        self.batch_size = batch_size
        self.progress = progress

    def mining_model(self, run_model: Any) -> BiEncoder:
        model = self.model if self.model is not None else run_model
        if not isinstance(model, BiEncoder):
            raise ValueError(f"a dense miner ranks with a bi-encoder, not {type(model).__name__}")
        return model

    def fingerprint(self, model: Any = None) -> dict[str, Any]:
        return {"kind": "dense", "model_sha256": model_fingerprint(self.mining_model(model))}

    def rank(
        self, dataset: BeirDataset, queries: dict[str, str], positives: dict[str, list[str]],
        doc_template: str, depth: int, model: Any = None,
    ) -> tuple[dict[str, Ranking], dict[str, dict[str, float]]]:
        model = self.mining_model(model)
        training = model.training
        model.eval()
        try:
            doc_ids, doc_embeddings = self._corpus(model, dataset, doc_template)
            query_ids = list(queries)
            embeddings = encode_texts(model, list(queries.values()), "query", self.batch_size, self.progress)
        finally:
            model.train(training)
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

    def _corpus(self, model: BiEncoder, dataset: BeirDataset, doc_template: str) -> tuple[list[str], np.ndarray]:
        if self.cache_dir is not None:
            cached = corpus_embeddings(model, dataset, doc_template, self.cache_dir / EMBEDDINGS_CACHE,
                                       self.batch_size, progress=self.progress)
            return cached.doc_ids, cached.embeddings
        texts = [document_text(doc, doc_template) for doc in dataset.corpus.values()]
        return list(dataset.corpus), encode_texts(model, texts, "doc", self.batch_size, self.progress)
