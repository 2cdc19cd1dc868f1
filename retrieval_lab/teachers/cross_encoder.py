"""A cross-encoder teacher: its relevance logits (Margin-MSE's and RocketQA's teacher)."""

from typing import Any

import numpy as np

from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.fingerprint import module_fingerprint
from retrieval_lab.models.cross_encoder import CrossEncoder
from retrieval_lab.teachers.teacher import PairIds, Teacher


class CrossEncoderTeacher(Teacher):
    """Args: ``path``: an exported cross-encoder, or the :class:`CrossEncoder` itself;
    ``max_length`` of the joint input (for a path); ``batch_size``."""

    def __init__(self, path: str | CrossEncoder, max_length: int = 512, batch_size: int = 32) -> None:
        self.model = path if isinstance(path, CrossEncoder) else CrossEncoder(str(path), max_length=max_length)
        self.batch_size = batch_size

    def fingerprint(self) -> dict[str, Any]:
        settings = {"max_length": self.model.max_length}
        return {"kind": "cross_encoder", **settings,
                "model_sha256": module_fingerprint(self.model, self.model.tokenizer, settings)}

    def score(self, dataset: BeirDataset, pairs: PairIds, doc_template: str) -> np.ndarray:
        queries = [dataset.queries[q] for q, _ in pairs]
        docs = [document_text(dataset.corpus[d], doc_template) for _, d in pairs]
        return self.model.predict(queries, docs, self.batch_size).numpy().astype(np.float32)
