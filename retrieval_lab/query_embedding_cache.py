"""Query embeddings, computed once per (query tower, query set, encoding contract) and reused.

A sweep over fusion weights, PRF settings or index types searches with the same queries under the
same model; so does every dataset's re-evaluation. The embeddings are kept under
``<cache_dir>/query_embeddings/<key>.npy`` (ArguAna's 1,406 long queries take minutes to encode
on a CPU). The key hashes what decides the vectors: every weight of the query tower, the
tokenizer, the pooling, normalization, query prefix, max length and truncated dimension, and the
query ids and texts in order. An entry is checked against its sidecar on every read
(``ContentCache``): a bad one is encoded again, never used.
"""

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from retrieval_lab.content_cache import ContentCache, CorruptEntry
from retrieval_lab.embedding_cache import tower_fingerprint
from retrieval_lab.encoding import encode_texts
from retrieval_lab.models.bi_encoder import BiEncoder

log = logging.getLogger(__name__)

QUERY_EMBEDDINGS_CACHE = "query_embeddings"  # its folder under a run's cache_dir


def query_embeddings(model: BiEncoder, queries: dict[str, str], cache_dir: str | Path | None,
                     batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """The embeddings of ``queries`` (id -> text) in their order, float32 [len(queries), dim]:
    from the cache under ``cache_dir``, or encoded and cached; encoded alone without a cache_dir."""
    texts = list(queries.values())
    if cache_dir is None or not queries:
        return encode_texts(model, texts, "query", batch_size, progress)
    parts = {"query_tower": tower_fingerprint(model, "query"),
             "queries_sha256": hashlib.sha256(json.dumps(list(queries.items())).encode()).hexdigest()}
    key = ContentCache.key(parts)
    cache = ContentCache(cache_dir, QUERY_EMBEDDINGS_CACHE, ".npy")

    def build():
        def write(tmp: Path) -> dict:
            embeddings = encode_texts(model, texts, "query", batch_size, progress)
            with open(tmp, "wb") as out:
                np.save(out, np.ascontiguousarray(embeddings, dtype=np.float32))
            return {"dim": int(embeddings.shape[1])}
        return {**parts, "num_queries": len(queries)}, write

    def load(path: Path, record: dict) -> np.ndarray:
        embeddings = np.load(path)
        if embeddings.shape != (record["num_queries"], record["dim"]):
            raise CorruptEntry(f"embeddings of shape {embeddings.shape}, its sidecar says "
                               f"{record['num_queries']} x {record['dim']}")
        if not np.isfinite(embeddings).all():
            raise CorruptEntry("the embeddings have non-finite values (NaN or inf)")
        return embeddings

    entry = cache.fetch(key, load, build)
    log.info("query embeddings of %d queries: cache %s (%s)", len(queries), "hit" if entry.hit else "miss", entry.path)
    return entry.value
