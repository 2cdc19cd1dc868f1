"""BM25 over a corpus of texts with bm25s: build, search top-k, score given documents, save/load.

The evaluate stage searches it like a dense index; it is also what a BM25 hard-negative miner
(top-k of arbitrary query texts) and a BM25 teacher (scores of given query-document pairs) need.
"""

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import bm25s
import numpy as np

from retrieval_lab.atomic import atomic_directory, atomic_write_text
from retrieval_lab.index.saved import IndexMismatchError, check_expected, read_index_info, save_index_dir
from retrieval_lab.index_profile import latency_report, size_report
from retrieval_lab.lexical.analyzer import (
    TOKEN_PATTERN,
    Analyzer,
    StemmerName,
    StopwordsName,
)
from retrieval_lab.retrievers.base import Retrieval, Retriever
from retrieval_lab.run_layout import INDEX_DOC_IDS_FILE as DOC_IDS_FILE

Method = Literal["lucene", "robertson", "atire", "bm25l", "bm25+"]
BM25S_DIR = "bm25s"  # bm25s's own files (sparse score matrix, vocabulary, its parameters)


def corpus_sha256(doc_ids: Sequence[str], texts: Sequence[str]) -> str:
    """Hash of the (doc id, text) pairs as indexed: the corpus file, its order and the document
    template all change it, so a saved index is never searched against another corpus."""
    digest = hashlib.sha256()
    for doc_id, text in zip(doc_ids, texts, strict=True):
        digest.update(json.dumps([doc_id, text]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


class BM25Index(Retriever):
    """BM25 (bm25s's sparse, precomputed scores) with its text analysis.

    Args:
        k1, b: term-frequency saturation and length normalization.
        method: bm25s's scoring variant (``lucene`` is Lucene's, with its always-positive idf).
        idf_method: the idf variant, when it should differ from ``method``.
        delta: the shift of BM25L and BM25+ (unused by the other methods).
        lower, token_pattern, stopwords, stemmer: the text analysis (:class:`Analyzer`), applied
            alike to documents and queries.

    Defaults are those of bm25s's README: ``BM25()`` (lucene, k1 1.5, b 0.75) over
    ``tokenize(texts, stopwords="en", stemmer=Stemmer("english"))``.
    """

    kind: ClassVar[str] = "bm25"

    def __init__(
        self,
        k1: float = 1.5,
        b: float = 0.75,
        method: Method = "lucene",
        idf_method: Method | None = None,
        delta: float = 0.5,
        lower: bool = True,
        token_pattern: str = TOKEN_PATTERN,
        stopwords: StopwordsName | list[str] | None = "en",
        stemmer: StemmerName | None = "english",
    ) -> None:
        if stopwords is not None and not isinstance(stopwords, str):
            stopwords = [str(w) for w in stopwords]  # a list from the config (ListConfig)
        self.analyzer = Analyzer(lower, token_pattern, stopwords, stemmer)
        self.k1 = float(k1)
        self.b = float(b)
        self.method = method
        self.idf_method = idf_method
        self.delta = float(delta)
        self.doc_ids: list[str] = []
        self.corpus_sha256: str | None = None
        self.build_seconds: float | None = None
        self._bm25: bm25s.BM25 | None = None
        self._rows: dict[str, int] = {}

    @property
    def params(self) -> dict[str, Any]:
        """The constructor's arguments: ``index.json`` records them and :meth:`load` passes them back."""
        return {"k1": self.k1, "b": self.b, "method": self.method, "idf_method": self.idf_method,
                "delta": self.delta, **self.analyzer.params()}

    def encoding_contract(self) -> dict[str, Any]:
        """How text becomes what is scored (BM25's counterpart of a bi-encoder's contract)."""
        return {"kind": self.kind, **self.params}

    @property
    def size(self) -> int:
        return len(self.doc_ids)

    def build(self, doc_ids: Sequence[str], texts: Sequence[str], progress: bool = False) -> None:
        """Tokenize ``texts`` and index them; row i is ``doc_ids[i]``. Times both."""
        if self.size:
            raise RuntimeError(f"bm25 index already holds {self.size} documents; make a new one")
        if len(doc_ids) != len(texts):
            raise ValueError(f"{len(doc_ids)} doc ids but {len(texts)} texts")
        if not doc_ids:
            raise ValueError("cannot build an index from 0 documents")
        if len(set(doc_ids)) != len(doc_ids):
            raise ValueError("doc ids are not unique")
        start = time.perf_counter()
        bm25 = bm25s.BM25(k1=self.k1, b=self.b, delta=self.delta, method=self.method,
                          idf_method=self.idf_method)
        bm25.index(self.analyzer.corpus_tokens(texts, progress), show_progress=progress)
        self.build_seconds = time.perf_counter() - start
        self._set(bm25, list(doc_ids), corpus_sha256(doc_ids, texts))

    def _set(self, bm25: bm25s.BM25, doc_ids: list[str], sha256: str) -> None:
        self._bm25 = bm25
        self.doc_ids = doc_ids
        self._rows = {d: i for i, d in enumerate(doc_ids)}
        self.corpus_sha256 = sha256

    def _built(self) -> bm25s.BM25:
        if self._bm25 is None:
            raise RuntimeError("the bm25 index is empty: build or load it first")
        return self._bm25

    def search(self, queries: Sequence[str], k: int) -> list[dict[str, float]]:
        """For each query text, up to ``k`` documents, best first, as doc id -> score.

        A document that shares no term with the query scores 0 and is not returned (Lucene
        returns only matches too), so a list can be shorter than ``k``, even empty.
        """
        bm25 = self._built()
        k = min(k, self.size)
        if k <= 0 or not len(queries):
            return [{} for _ in queries]
        rows, scores = bm25.retrieve(self.analyzer.tokens(queries), k=k, show_progress=False)
        return [
            {self.doc_ids[r]: float(s) for r, s in zip(q_rows, q_scores) if s > 0}
            for q_rows, q_scores in zip(rows.tolist(), scores.tolist())
        ]

    def retrieve(self, queries: dict[str, str], k: int) -> Retrieval:
        start = time.perf_counter()
        hits = self.search(list(queries.values()), k)
        return Retrieval(dict(zip(queries, hits)), time.perf_counter() - start)

    def profile(self, queries: dict[str, str], retrieval: Retrieval, k: int,
                latency_queries: int) -> dict[str, Any]:
        """A vector index's report less recall against exact search (BM25 is exact): size of the
        score matrix, build time, per-query latency (query analysis included), QPS."""
        report = size_report(self, self.nbytes())
        texts = list(queries.values())
        report.update(latency_report(lambda query: self.search([query], k), texts[:latency_queries]))
        report["qps"] = round(len(texts) / retrieval.seconds, 1)
        return report

    def score(self, query: str, doc_ids: Sequence[str]) -> np.ndarray:
        """BM25 score of each of ``doc_ids`` for ``query`` (float32; 0 where no term is shared),
        the same scores :meth:`search` ranks by."""
        bm25 = self._built()
        missing = [d for d in doc_ids if d not in self._rows]
        if missing:
            raise KeyError(f"{len(missing)} doc id(s) not in the index, e.g. {missing[0]!r}")
        rows = np.fromiter((self._rows[d] for d in doc_ids), dtype=np.int64, count=len(doc_ids))
        tokens = self.analyzer.tokens([query])[0]
        if not tokens:
            return np.zeros(len(rows), dtype=np.float32)
        return np.asarray(bm25.get_scores(tokens), dtype=np.float32)[rows]

    def nbytes(self) -> int:
        """Bytes of the score matrix (CSC data, indices, indptr; the non-occurrence array of
        BM25L/BM25+); the vocabulary is not counted."""
        bm25 = self._built()
        arrays = [bm25.scores[name] for name in ("data", "indices", "indptr")]
        if getattr(bm25, "nonoccurrence_array", None) is not None:
            arrays.append(bm25.nonoccurrence_array)
        return int(sum(np.asarray(a).nbytes for a in arrays))

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> None:
        """Write bm25s's files, the doc id of each row, then ``index.json`` (kind, params, size,
        corpus hash, and ``metadata``) last, as every saved index does
        (:func:`~retrieval_lab.index.saved.save_index_dir`)."""
        bm25 = self._built()
        info = {"kind": self.kind, "params": self.params, "size": self.size,
                "corpus_sha256": self.corpus_sha256, "nbytes": self.nbytes(),
                "build_seconds": self.build_seconds, "bm25s_version": bm25s.__version__}

        def write_files(directory: Path) -> None:
            with atomic_directory(directory / BM25S_DIR) as tmp:
                bm25.save(tmp, show_progress=False)
            atomic_write_text(directory / DOC_IDS_FILE, "".join(f"{d}\n" for d in self.doc_ids))

        save_index_dir(directory, info, metadata or {}, write_files)

    @classmethod
    def load(cls, directory: str | Path, expected: dict[str, Any] | None = None,
             mmap: bool = False) -> "BM25Index":
        """The index saved in ``directory``, searching with the parameters it was built with.

        Raises :class:`IndexMismatchError` when it is not a bm25 index, or when a key of
        ``expected`` (e.g. ``{"corpus_sha256": ..., "params": ...}``) differs from what was
        saved; the message names the first field that differs. ``mmap`` memory-maps the scores.
        """
        directory = Path(directory)
        info = read_index_info(directory)
        if info.get("kind") != cls.kind:
            raise IndexMismatchError(
                f"index in {directory} has kind={info.get('kind')!r}, expected {cls.kind!r}")
        check_expected(directory, info, expected or {})
        index = cls(**info["params"])
        bm25 = bm25s.BM25.load(directory / BM25S_DIR, mmap=mmap, show_progress=False)
        doc_ids = (directory / DOC_IDS_FILE).read_text(encoding="utf-8").splitlines()
        if len(doc_ids) != info["size"]:
            raise IndexMismatchError(
                f"{directory / DOC_IDS_FILE} lists {len(doc_ids)} doc ids, index.json says {info['size']}")
        index._set(bm25, doc_ids, info["corpus_sha256"])
        index.build_seconds = info["build_seconds"]
        return index
