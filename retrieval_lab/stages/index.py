"""Stage ``index``: the configured index over the corpus, saved in the run, as a
:class:`~retrieval_lab.retrievers.Retriever`. A vector index is built over the model's corpus
embeddings (from the cache, or encoded once); a lexical index (BM25), a retriever by itself, over
the corpus texts; a hybrid, each of its components in its own sub-directory (``index/<name>/``)."""

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
from retrieval_lab.index.saved import read_index_info, save_index_dir
from retrieval_lab.lexical import BM25Index, corpus_sha256
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.retrievers import DenseRetriever, Fusion, HybridIndex, HybridRetriever, Retriever
from retrieval_lab.run_layout import INDEX_DOC_IDS_FILE
from retrieval_lab.settings import RunSettings

log = logging.getLogger(__name__)

# What conf/index/ builds: a vector index factory, BM25, or a hybrid of them.
IndexComponent = Callable[..., Index] | BM25Index | HybridIndex


def doc_ids_sha256(doc_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(doc_ids).encode()).hexdigest()


def needs_embeddings(index: IndexComponent) -> bool:
    """Whether building ``index`` reads the model's corpus embeddings (a vector index; a hybrid
    with one among its components), not only the texts (BM25)."""
    if isinstance(index, HybridIndex):
        return any(needs_embeddings(component) for component in index.components.values())
    return not isinstance(index, BM25Index)


def build_index(index: IndexComponent, model: BiEncoder | None, dataset: BeirDataset, settings: RunSettings,
                out_dir: Path) -> Retriever:
    """Builds ``index`` over the corpus and saves it in ``out_dir``, with the doc id of each row
    and the metadata (embeddings key or corpus hash) that later loads are checked against."""
    if isinstance(index, BM25Index):
        return _build_bm25(index, dataset, settings.doc_template, out_dir, settings.progress)
    if isinstance(index, HybridIndex):
        return _build_hybrid(index, model, dataset, settings, out_dir)
    corpus = corpus_embeddings(model, dataset, settings.doc_template, settings.embeddings_dir,
                               settings.encode_batch_size, progress=settings.progress)
    built = index(dim=corpus.embeddings.shape[1])
    built.build(corpus.embeddings)
    metadata = {
        "dataset": dataset.name,
        "embeddings_key": corpus.key,
        "embeddings_path": str(corpus.path),
        "doc_ids_sha256": doc_ids_sha256(corpus.doc_ids),
    }
    built.save(out_dir, metadata)
    atomic_write_text(out_dir / INDEX_DOC_IDS_FILE, "".join(f"{d}\n" for d in corpus.doc_ids))
    log.info("built a %s index over %d documents (dim %d, %d bytes) in %.2f s",
             built.kind, built.size, built.dim, built.nbytes(), built.build_seconds)
    return DenseRetriever(model, built, corpus, settings.encode_batch_size, settings.progress, settings.cache_dir)


def _build_bm25(index: BM25Index, dataset: BeirDataset, doc_template: str, out_dir: Path,
                progress: bool) -> BM25Index:
    doc_ids = list(dataset.corpus)
    index.build(doc_ids, [document_text(dataset.corpus[d], doc_template) for d in doc_ids], progress)
    index.save(out_dir, {"dataset": dataset.name, "doc_template": doc_template})
    log.info("built a bm25 index over %d documents (%d bytes) in %.2f s",
             index.size, index.nbytes(), index.build_seconds)
    return index


def _build_hybrid(index: HybridIndex, model: BiEncoder | None, dataset: BeirDataset, settings: RunSettings,
                  out_dir: Path) -> HybridRetriever:
    """Each component built and saved in ``out_dir/<name>``, then the hybrid's own ``index.json``
    (the components' kinds and the fusion), last."""
    components: dict[str, Retriever] = {}
    info = {"kind": HybridIndex.kind, "fusion": index.fusion.as_record()}

    def write_files(directory: Path) -> None:
        for name, component in index.components.items():
            components[name] = build_index(component, model, dataset, settings, directory / name)
        info["components"] = {name: c.kind for name, c in components.items()}

    save_index_dir(out_dir, info, {"dataset": dataset.name}, write_files)
    return HybridRetriever(components, index.fusion)


def _load_hybrid(index: IndexComponent | None, model: BiEncoder | None, dataset: BeirDataset,
                 settings: RunSettings, index_dir: Path) -> HybridRetriever:
    """The saved components, fused as the configured hybrid says (else as saved); a configured
    hybrid must name the saved components."""
    info = read_index_info(index_dir)
    configured = index.components if isinstance(index, HybridIndex) else None
    if configured is not None and list(configured) != list(info["components"]):
        raise IndexMismatchError(f"index in {index_dir} has components {list(info['components'])}, "
                                 f"expected {list(configured)}")
    components = {name: load_index(configured[name] if configured else None, model, dataset, settings,
                                   index_dir / name)
                  for name in info["components"]}
    fusion = index.fusion if isinstance(index, HybridIndex) else Fusion(**info["fusion"])
    log.info("loaded a hybrid index of %s from %s", ", ".join(info["components"]), index_dir)
    return HybridRetriever(components, fusion)


def load_index(index: IndexComponent | None, model: BiEncoder | None, dataset: BeirDataset, settings: RunSettings,
               index_dir: Path) -> Retriever:
    """The index saved in ``index_dir``, if it was built over this corpus (else
    :class:`IndexMismatchError`): a BM25 index with the configured ``index``'s parameters (or its
    own, where the configured index is a vector one), a vector index only from this model's
    embeddings, with them when still cached; a hybrid, its components so."""
    kind = read_index_info(index_dir).get("kind")
    if kind == HybridIndex.kind:
        return _load_hybrid(index, model, dataset, settings, index_dir)
    if kind == BM25Index.kind:
        doc_ids = list(dataset.corpus)
        texts = [document_text(dataset.corpus[d], settings.doc_template) for d in doc_ids]
        expected = {"corpus_sha256": corpus_sha256(doc_ids, texts)}
        if isinstance(index, BM25Index):
            expected["params"] = index.params
        try:
            index = BM25Index.load(index_dir, expected)
        except IndexMismatchError as err:
            raise IndexMismatchError(f"{err}: it was not built with these parameters over {dataset.name}") from None
        log.info("loaded a bm25 index of %d documents from %s", index.size, index_dir)
        return index
    if model is None:
        raise IndexMismatchError(f"index in {index_dir} searches embeddings, and the run has no model to "
                                 "embed the queries (set model=...)")
    key, _ = embeddings_key(model, dataset, settings.doc_template)
    doc_ids = list(dataset.corpus)
    expected = {"dim": model.dim, "embeddings_key": key, "doc_ids_sha256": doc_ids_sha256(doc_ids)}
    try:
        vectors = Index.load(index_dir, expected)
    except IndexMismatchError as err:
        raise IndexMismatchError(
            f"{err}: it was not built from this model's embeddings of {dataset.name}"
        ) from None
    corpus = cached_embeddings(key, settings.embeddings_dir)
    if corpus is None:
        log.info("embeddings %s are no longer cached: recall vs exact search is not reported", key)
        corpus = CorpusEmbeddings(key, index_dir, None, doc_ids, from_cache=False)
    log.info("loaded a %s index of %d documents from %s", vectors.kind, vectors.size, index_dir)
    return DenseRetriever(model, vectors, corpus, settings.encode_batch_size, settings.progress, settings.cache_dir)
