"""Stage ``index``: encode the corpus and build the configured faiss index over it."""

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retrieval_lab.data.beir import BeirDataset, document_text
from retrieval_lab.encoding import encode_texts
from retrieval_lab.index.flat import FlatIndex
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.record import atomic_write_text

log = logging.getLogger(__name__)


def build_index(
    model: BiEncoder,
    dataset: BeirDataset,
    make_index: Callable[..., FlatIndex],
    doc_template: str,
    out_dir: Path,
    batch_size: int,
    progress: bool,
) -> tuple[FlatIndex, list[str]]:
    """Returns the index and the doc id of each of its rows; writes both, and the embeddings."""
    doc_ids = list(dataset.corpus)
    texts = [document_text(dataset.corpus[d], doc_template) for d in doc_ids]
    log.info("encoding %d documents of %s", len(texts), dataset.name)
    embeddings = encode_texts(model, texts, "doc", batch_size, progress)
    index = make_index(dim=embeddings.shape[1])
    index.add(embeddings)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".corpus.npy.tmp"
    with open(tmp, "wb") as handle:
        np.save(handle, embeddings)
    tmp.replace(out_dir / "corpus.npy")
    atomic_write_text(out_dir / "doc_ids.txt", "".join(f"{d}\n" for d in doc_ids))
    index.save(out_dir / "index.faiss")
    log.info("indexed %d documents (dim %d) in %s", index.size, embeddings.shape[1], out_dir)
    return index, doc_ids
