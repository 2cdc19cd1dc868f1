"""A bi-encoder teacher: the inner product of its query and document embeddings (for instance a
larger fine-tuned bi-encoder, or TAS-B's in-batch ColBERT stand-in)."""

from typing import Any

import numpy as np

from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.embedding_cache import model_fingerprint
from retrieval_lab.encoding import encode_texts
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.teachers.teacher import PairIds, Teacher


class BiEncoderTeacher(Teacher):
    """Args: ``path``: an exported bi-encoder (or a hub id), or the :class:`BiEncoder` itself;
    ``batch_size`` for encoding."""

    def __init__(self, path: str | BiEncoder, batch_size: int = 64) -> None:
        self.model = path if isinstance(path, BiEncoder) else BiEncoder(name_or_path=str(path))
        self.batch_size = batch_size

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "bi_encoder", "model_sha256": model_fingerprint(self.model)}

    def score(self, dataset: BeirDataset, pairs: PairIds, doc_template: str) -> np.ndarray:
        query_ids = sorted({q for q, _ in pairs})
        doc_ids = sorted({d for _, d in pairs})
        queries = self.query_embeddings(dataset, query_ids)
        docs = self.doc_embeddings(dataset, doc_ids, doc_template)
        q_row = {q: i for i, q in enumerate(query_ids)}
        d_row = {d: i for i, d in enumerate(doc_ids)}
        q_index = np.fromiter((q_row[q] for q, _ in pairs), dtype=np.int64, count=len(pairs))
        d_index = np.fromiter((d_row[d] for _, d in pairs), dtype=np.int64, count=len(pairs))
        return np.einsum("ij,ij->i", queries[q_index], docs[d_index]).astype(np.float32)

    def query_embeddings(self, dataset: BeirDataset, query_ids: list[str]) -> np.ndarray:
        """[len(query_ids), dim] the teacher's query embeddings (embedding distillation's targets)."""
        return self.embed_queries([dataset.queries[q] for q in query_ids])

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """[len(texts), dim] any texts embedded as queries."""
        self.model.eval()
        return encode_texts(self.model, texts, "query", self.batch_size, False)

    def doc_embeddings(self, dataset: BeirDataset, doc_ids: list[str], doc_template: str) -> np.ndarray:
        """[len(doc_ids), dim] the teacher's document embeddings (in-batch teacher scores)."""
        self.model.eval()
        texts = [document_text(dataset.corpus[d], doc_template) for d in doc_ids]
        return encode_texts(self.model, texts, "doc", self.batch_size, False)
