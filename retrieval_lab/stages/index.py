"""Stage ``index``: corpus embeddings (from the cache, or encoded once), then the configured index;
for a lexical model (BM25) the model's own index over the corpus texts instead."""

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from retrieval_lab.atomic import atomic_write_text
from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.embedding_cache import (
    CorpusEmbeddings,
    cached_embeddings,
    corpus_embeddings,
    embeddings_key,
)
from retrieval_lab.index.base import Index, IndexMismatchError
from retrieval_lab.lexical import BM25Index, corpus_sha256
from retrieval_lab.models.bi_encoder import BiEncoder

log = logging.getLogger(__name__)


def doc_ids_sha256(doc_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(doc_ids).encode()).hexdigest()


def build_index(
    model: BiEncoder | BM25Index,
    dataset: BeirDataset,
    make_index: Callable[..., Index],
    doc_template: str,
    cache_dir: Path,
    out_dir: Path,
    batch_size: int,
    progress: bool,
) -> tuple[Index | BM25Index, CorpusEmbeddings | None]:
    """Builds the index over the corpus embeddings and saves it, with the doc id of each row and
    the metadata (embeddings key, doc ids hash) that later loads are checked against.

    A BM25 model is its own index: it is built over the documents' texts (no embeddings, so
    ``make_index`` and the cache are unused) and returned with no corpus embeddings.
    """
    if isinstance(model, BM25Index):
        return build_bm25_index(model, dataset, doc_template, out_dir, progress), None
    corpus = corpus_embeddings(model, dataset, doc_template, cache_dir, batch_size, progress=progress)
    index = make_index(dim=corpus.embeddings.shape[1])
    index.build(corpus.embeddings)
    metadata = {
        "dataset": dataset.name,
        "embeddings_key": corpus.key,
        "embeddings_path": str(corpus.path),
        "doc_ids_sha256": doc_ids_sha256(corpus.doc_ids),
    }
    index.save(out_dir, metadata)
    atomic_write_text(out_dir / "doc_ids.txt", "".join(f"{d}\n" for d in corpus.doc_ids))
    log.info("built a %s index over %d documents (dim %d, %d bytes) in %.2f s",
             index.kind, index.size, index.dim, index.nbytes(), index.build_seconds)
    return index, corpus


def build_bm25_index(
    model: BM25Index, dataset: BeirDataset, doc_template: str, out_dir: Path, progress: bool
) -> BM25Index:
    """``model`` built over the corpus texts (``doc_template``) and saved in ``out_dir``."""
    doc_ids = list(dataset.corpus)
    model.build(doc_ids, [document_text(dataset.corpus[d], doc_template) for d in doc_ids], progress)
    model.save(out_dir, {"dataset": dataset.name, "doc_template": doc_template})
    log.info("built a bm25 index over %d documents (%d bytes) in %.2f s",
             model.size, model.nbytes(), model.build_seconds)
    return model


def load_index(
    model: BiEncoder | BM25Index, dataset: BeirDataset, doc_template: str, cache_dir: Path,
    index_dir: Path,
) -> tuple[Index | BM25Index, CorpusEmbeddings | None]:
    """The index saved in ``index_dir``, if it was built from this model's embeddings of this
    corpus (else :class:`IndexMismatchError`), with the cached embeddings when still cached.
    For a BM25 model: the saved BM25 index, if built with its parameters over this corpus."""
    if isinstance(model, BM25Index):
        doc_ids = list(dataset.corpus)
        texts = [document_text(dataset.corpus[d], doc_template) for d in doc_ids]
        expected = {"params": model.params, "corpus_sha256": corpus_sha256(doc_ids, texts)}
        try:
            index = BM25Index.load(index_dir, expected)
        except IndexMismatchError as err:
            raise IndexMismatchError(f"{err}: it was not built by this model over {dataset.name}") from None
        log.info("loaded a bm25 index of %d documents from %s", index.size, index_dir)
        return index, None
    key, _ = embeddings_key(model, dataset, doc_template)
    doc_ids = list(dataset.corpus)
    expected = {"dim": model.dim, "embeddings_key": key, "doc_ids_sha256": doc_ids_sha256(doc_ids)}
    try:
        index = Index.load(index_dir, expected)
    except IndexMismatchError as err:
        raise IndexMismatchError(
            f"{err}: it was not built from this model's embeddings of {dataset.name}"
        ) from None
    corpus = cached_embeddings(key, cache_dir)
    if corpus is None:
        log.info("embeddings %s are no longer cached: recall vs exact search is not reported", key)
        corpus = CorpusEmbeddings(key, index_dir, None, doc_ids, from_cache=False)
    log.info("loaded a %s index of %d documents from %s", index.kind, index.size, index_dir)
    return index, corpus
