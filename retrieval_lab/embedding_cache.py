"""Corpus embeddings, computed once per (document tower, corpus, encoding contract) and reused.

A sweep over index types, or a re-evaluation of the same checkpoint, finds the embeddings under
``<cache_dir>/<key>/`` and memory-maps them instead of encoding the corpus again. The key hashes
exactly what determines the vectors: every weight of the document tower, the tokenizer, the
pooling, normalization, document prefix and max length, the corpus file's bytes, and the document
template. A query tower trained against a frozen document tower therefore finds the corpus
embeddings (and index) of the model that document tower came from.
Embeddings are written in chunks, with plain writes, into an ``.npy`` file, so the corpus's vectors
never need to fit in RAM and a full disk is an error (a write into a memory-mapped sparse file would
kill the process with SIGBUS); the directory is moved into place only when complete, and checked
against its sidecar on every read (``ContentCache``): a bad entry is rebuilt, never used.
"""

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.distributed as dist

from retrieval_lab.atomic import atomic_path
from retrieval_lab.content_cache import ContentCache, CorruptEntry, DataWriter, Entry
from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.encoding import encode_texts
from retrieval_lab.fingerprint import module_fingerprint
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.models.tokenization import Side
from retrieval_lab.provenance import file_sha256
from retrieval_lab.training.cross_device import world
from retrieval_lab.training.precision import FP32

log = logging.getLogger(__name__)

EMBEDDINGS_CACHE = "embeddings"  # its folder under a run's cache_dir: <cache_dir>/embeddings/<key>/
EMBEDDINGS_FILE = "embeddings.npy"
DOC_IDS_FILE = "doc_ids.txt"
FINITE_CHECK_ROWS = 1 << 16  # rows checked at a time: the check needs no copy of the whole matrix


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


def tower_fingerprint(model: BiEncoder, side: Side) -> str:
    """sha256 of what decides one side's embedding: that tower's weights, the tokenizer, pooling,
    normalization, the side's prefix and max length, the truncated dimension and, where it is not
    fp32, the precision it is encoded in."""
    contract = {"pooling": model.pooling, "normalize": model.normalize,
                "prefix": model.tokenization.prefixes[side], "max_length": model.tokenization.max_lengths[side],
                **({} if model.truncate_dim is None else {"truncate_dim": model.truncate_dim}),
                **({} if model.encode_precision == FP32 else {"encode_precision": model.encode_precision})}
    return module_fingerprint(model.tower(side), model.tokenization.tokenizer, contract)


def embeddings_key(model: BiEncoder, dataset: BeirDataset, doc_template: str) -> tuple[str, dict]:
    """The cache key of the corpus's embeddings under ``model``, and the parts it hashes."""
    parts = {
        "doc_tower": tower_fingerprint(model, "doc"),
        "corpus_sha256": file_sha256(dataset.path / "corpus.jsonl"),
        "doc_template": doc_template,
    }
    return ContentCache.key(parts), parts


def cached_embeddings(key: str, cache_dir: str | Path) -> CorpusEmbeddings | None:
    cache = ContentCache(cache_dir)
    with cache.locked(key):
        entry = cache.lookup(key, _load)
    if entry is None:
        return None
    log.info("embedding cache hit: %s (%s)", key, entry.path)
    return _corpus(key, entry)


def corpus_embeddings(
    model: BiEncoder,
    dataset: BeirDataset,
    doc_template: str,
    cache_dir: str | Path,
    batch_size: int = 64,
    chunk_size: int = 100_000,
    progress: bool = True,
    sharded: bool = False,
) -> CorpusEmbeddings:
    """The corpus's embeddings from the cache, or encoded (in chunks) and cached; parallel jobs
    that need the same ones encode them once. ``sharded``: every rank of the process group calls
    this, each encodes a contiguous shard, and rank 0 merges them into the entry
    (:func:`_encode_sharded`)."""
    key, parts = embeddings_key(model, dataset, doc_template)
    cache = ContentCache(cache_dir)
    path, _ = cache.paths(key)
    doc_ids = list(dataset.corpus)

    def texts(begin: int, end: int) -> list[str]:
        return [document_text(dataset.corpus[d], doc_template) for d in doc_ids[begin:end]]

    def encoded(begin: int, end: int) -> Iterator[np.ndarray]:
        for start in range(begin, end, chunk_size):
            yield encode_texts(model, texts(start, min(start + chunk_size, end)), "doc", batch_size, progress)

    def write_entry(tmp: Path, chunks: Iterator[np.ndarray]) -> dict:
        start = time.perf_counter()
        _write_rows(tmp / EMBEDDINGS_FILE, len(doc_ids), model.dim, chunks)
        (tmp / DOC_IDS_FILE).write_text("".join(f"{d}\n" for d in doc_ids))
        return {"dim": model.dim, "encode_seconds": round(time.perf_counter() - start, 3)}

    def build(chunks: Callable[[], Iterator[np.ndarray]], how: str) -> Callable[[], tuple[dict, DataWriter]]:
        def builder() -> tuple[dict, DataWriter]:
            log.info("embedding cache miss: %s %d documents of %s into %s", how, len(doc_ids), dataset.name, path)
            meta = {"key": key, **parts, "dataset": dataset.name, "num_docs": len(doc_ids),
                    "encoding": model.encoding_contract()}
            return meta, lambda tmp: write_entry(tmp, chunks())
        return builder

    if sharded and world()[1] > 1:
        return _encode_sharded(key, cache, len(doc_ids), model.dim, chunk_size, encoded, build)
    entry = cache.fetch(key, _load, build(lambda: encoded(0, len(doc_ids)), "encoding"))
    if entry.hit:
        log.info("embedding cache hit: %s (%s)", key, entry.path)
    return _corpus(key, entry)


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """Rows [begin, end) of rank ``rank``'s contiguous shard of ``n``: the sizes differ by at most one."""
    return rank * n // size, (rank + 1) * n // size


def _encode_sharded(key: str, cache: ContentCache, n_docs: int, dim: int, chunk_size: int,
                    encoded: Callable[[int, int], Iterator[np.ndarray]],
                    build: Callable[..., Callable[[], tuple[dict, DataWriter]]]) -> CorpusEmbeddings:
    """Each rank encodes its shard into ``<cache>/<key>.shards/``; rank 0 merges the shards, in
    corpus order, into the cache entry (streamed: no rank holds the whole matrix) and removes
    them; every rank then reads the entry. Collective: every rank calls it, with the same key."""
    rank, size = world()
    keys: list[str | None] = [None] * size
    dist.all_gather_object(keys, key)
    if any(k != keys[0] for k in keys):
        raise RuntimeError(f"the ranks' document towers differ (embedding keys {keys}): they must hold the same weights")
    missing = [cached_embeddings(key, cache.dir) is None if rank == 0 else None]
    dist.broadcast_object_list(missing, src=0)
    if missing[0]:
        shards = cache.dir / f"{key}.shards"
        shards.mkdir(parents=True, exist_ok=True)
        begin, end = shard_bounds(n_docs, rank, size)
        start = time.perf_counter()
        with atomic_path(shards / f"{rank}-of-{size}.npy") as tmp:
            _write_rows(tmp, end - begin, dim, encoded(begin, end))
        log.info("encoded shard %d of %d: documents %d-%d of %d in %.1f s", rank, size, begin, end, n_docs,
                 time.perf_counter() - start)
        dist.barrier()
        if rank == 0:
            files = [shards / f"{r}-of-{size}.npy" for r in range(size)]
            cache.fetch(key, _load, build(lambda: _rows(files, chunk_size), f"merging {size} shards of"))
            shutil.rmtree(shards)
        dist.barrier()
    corpus = cached_embeddings(key, cache.dir)
    if corpus is None:
        raise RuntimeError(f"embeddings {key} are not in {cache.dir} after the ranks encoded them: "
                           "the cache directory must be one that every rank can read (a shared filesystem)")
    return dataclasses.replace(corpus, from_cache=not missing[0])


def _rows(files: list[Path], chunk_size: int) -> Iterator[np.ndarray]:
    """The rows of the ``.npy`` files, in order, ``chunk_size`` at a time (memory-mapped)."""
    for file in files:
        rows = np.load(file, mmap_mode="r")
        for begin in range(0, len(rows), chunk_size):
            yield rows[begin : begin + chunk_size]


def _write_rows(path: Path, n_rows: int, dim: int, chunks: Iterator[np.ndarray]) -> None:
    """An ``.npy`` of ``n_rows`` x ``dim`` float32 written chunk by chunk with plain writes (a full
    disk is an error, not a SIGBUS), fsynced."""
    written = 0
    with open(path, "wb") as out:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                  "shape": (n_rows, dim)}
        np.lib.format.write_array_header_1_0(out, header)
        for chunk in chunks:
            out.write(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())
            written += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    if written != n_rows:
        raise RuntimeError(f"{path}: {written} rows written, {n_rows} expected")


def _load(path: Path, meta: dict) -> tuple[np.ndarray, list[str]]:
    """The entry's embeddings (memory-mapped) and doc ids, checked against ``meta``."""
    embeddings = np.load(path / EMBEDDINGS_FILE, mmap_mode="r")
    doc_ids = (path / DOC_IDS_FILE).read_text().split("\n")[:-1]
    if embeddings.shape != (meta["num_docs"], meta["dim"]) or len(doc_ids) != meta["num_docs"]:
        raise CorruptEntry(f"{embeddings.shape[0]} x {embeddings.shape[1]} embeddings and {len(doc_ids)} doc ids, "
                           f"its sidecar says {meta['num_docs']} x {meta['dim']}")
    for begin in range(0, len(embeddings), FINITE_CHECK_ROWS):
        rows = embeddings[begin : begin + FINITE_CHECK_ROWS]
        if not np.isfinite(rows).all():
            bad = begin + int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
            raise CorruptEntry(f"{EMBEDDINGS_FILE} has non-finite values (NaN or inf), first in row {bad}")
    return embeddings, doc_ids


def _corpus(key: str, entry: Entry[tuple[np.ndarray, list[str]]]) -> CorpusEmbeddings:
    embeddings, doc_ids = entry.value
    return CorpusEmbeddings(key, entry.path, embeddings, doc_ids, from_cache=entry.hit)
