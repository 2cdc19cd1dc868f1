"""Corpus embeddings, computed once per (document tower, corpus, encoding contract) and reused.

A sweep over index types, or a re-evaluation of the same checkpoint, finds the embeddings under
``<cache_dir>/<key>/`` and memory-maps them instead of encoding the corpus again. The key hashes
exactly what determines the vectors: every weight of the document tower, the tokenizer, the
pooling, normalization, document prefix and max length, the corpus file's bytes, and the document
template. A query tower trained against a frozen document tower therefore finds the corpus
embeddings (and index) of the model that document tower came from.
Embeddings are written in chunks into a memory-mapped file, so the corpus's vectors never need to
fit in RAM, and the directory is moved into place only when complete (``ContentCache``).
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval_lab.content_cache import ContentCache
from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.encoding import encode_texts
from retrieval_lab.fingerprint import module_fingerprint
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.provenance import file_sha256

log = logging.getLogger(__name__)

EMBEDDINGS_CACHE = "embeddings"  # its folder under a run's cache_dir: <cache_dir>/embeddings/<key>/


@dataclass
class CorpusEmbeddings:
    key: str
    path: Path
    embeddings: np.ndarray | None  # read-only memory map [n_docs, dim] float32; None: not cached
    doc_ids: list[str]
    from_cache: bool


def model_fingerprint(model: BiEncoder) -> str:
    """sha256 of the encoding contract (less the model's name), the tokenizer and every weight."""
    contract = {k: v for k, v in model.encoding_contract().items() if k != "name_or_path"}
    return module_fingerprint(model, model.tokenization.tokenizer, contract)


def doc_fingerprint(model: BiEncoder) -> str:
    """sha256 of what decides a document's embedding: the document tower's weights, the tokenizer,
    pooling, normalization, document prefix and max length, and the truncated dimension."""
    contract = {"pooling": model.pooling, "normalize": model.normalize,
                "prefix": model.tokenization.prefixes["doc"], "max_length": model.tokenization.max_lengths["doc"],
                **({} if model.truncate_dim is None else {"truncate_dim": model.truncate_dim})}
    return module_fingerprint(model.tower("doc"), model.tokenization.tokenizer, contract)


def embeddings_key(model: BiEncoder, dataset: BeirDataset, doc_template: str) -> tuple[str, dict]:
    """The cache key of the corpus's embeddings under ``model``, and the parts it hashes."""
    parts = {
        "doc_tower": doc_fingerprint(model),
        "corpus_sha256": file_sha256(dataset.path / "corpus.jsonl"),
        "doc_template": doc_template,
    }
    return ContentCache.key(parts), parts


def cached_embeddings(key: str, cache_dir: str | Path) -> CorpusEmbeddings | None:
    cache = ContentCache(cache_dir)
    if cache.lookup(key) is None:
        return None
    path, _ = cache.paths(key)
    log.info("embedding cache hit: %s (%s)", key, path)
    return _load(key, path, from_cache=True)


def corpus_embeddings(
    model: BiEncoder,
    dataset: BeirDataset,
    doc_template: str,
    cache_dir: str | Path,
    batch_size: int = 64,
    chunk_size: int = 100_000,
    progress: bool = True,
) -> CorpusEmbeddings:
    """The corpus's embeddings from the cache, or encoded (in chunks) and cached."""
    key, parts = embeddings_key(model, dataset, doc_template)
    cached = cached_embeddings(key, cache_dir)
    if cached is not None:
        return cached

    cache = ContentCache(cache_dir)
    path, _ = cache.paths(key)
    doc_ids = list(dataset.corpus)
    log.info("embedding cache miss: encoding %d documents of %s into %s",
             len(doc_ids), dataset.name, path)

    def encode_into(tmp: Path) -> dict:
        start = time.perf_counter()
        out = None
        for begin in range(0, len(doc_ids), chunk_size):
            ids = doc_ids[begin : begin + chunk_size]
            texts = [document_text(dataset.corpus[d], doc_template) for d in ids]
            chunk = encode_texts(model, texts, "doc", batch_size, progress)
            if out is None:
                out = np.lib.format.open_memmap(
                    tmp / "embeddings.npy", mode="w+", dtype=np.float32, shape=(len(doc_ids), chunk.shape[1])
                )
            out[begin : begin + len(ids)] = chunk
        out.flush()
        del out
        (tmp / "doc_ids.txt").write_text("".join(f"{d}\n" for d in doc_ids))
        return {"encode_seconds": round(time.perf_counter() - start, 3)}

    meta = {"key": key, **parts, "dataset": dataset.name, "num_docs": len(doc_ids),
            "encoding": model.encoding_contract()}
    # False: a parallel job of the same sweep finished the same embeddings first: use those.
    stored = cache.store(key, meta, encode_into)
    return _load(key, path, from_cache=not stored)


def _load(key: str, path: Path, from_cache: bool) -> CorpusEmbeddings:
    embeddings = np.load(path / "embeddings.npy", mmap_mode="r")
    doc_ids = (path / "doc_ids.txt").read_text().split("\n")[:-1]
    if len(doc_ids) != embeddings.shape[0]:
        raise ValueError(f"{path}: {len(doc_ids)} doc ids for {embeddings.shape[0]} embeddings; delete it")
    return CorpusEmbeddings(key, path, embeddings, doc_ids, from_cache)
