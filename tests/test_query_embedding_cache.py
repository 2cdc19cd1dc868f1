"""The query embedding cache: the same vectors back on reuse, a new entry when anything that shapes
them changes, a bad entry encoded again, and a dense retriever that searches with it."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval_lab.data.beir import load_beir
from retrieval_lab.embedding_cache import corpus_embeddings
from retrieval_lab.encoding import encode_texts
from retrieval_lab.index import FlatIndex
from retrieval_lab.query_embedding_cache import QUERY_EMBEDDINGS_CACHE, query_embeddings
from retrieval_lab.retrievers import DenseRetriever
from tests.test_model import tiny

QUERIES = {"q1": "protein folding in the cell", "q2": "insulin", "q3": "sleep and the immune response of mice"}


def _entries(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / QUERY_EMBEDDINGS_CACHE).glob("*.npy"))


def test_a_second_call_reads_back_exactly_what_the_first_encoded(tmp_path: Path, caplog):
    model = tiny()
    with caplog.at_level(logging.INFO, logger="retrieval_lab.query_embedding_cache"):
        first = query_embeddings(model, QUERIES, tmp_path, batch_size=2)
        second = query_embeddings(model, QUERIES, tmp_path, batch_size=2)
    assert np.array_equal(first, second) and second.dtype == np.float32
    assert np.array_equal(first, encode_texts(model, list(QUERIES.values()), "query", 2, progress=False))
    assert ["miss" in m for m in caplog.messages if "query embeddings" in m] == [True, False]
    [entry] = _entries(tmp_path)
    sidecar = json.loads((tmp_path / QUERY_EMBEDDINGS_CACHE / entry.replace(".npy", ".json")).read_text())
    assert sidecar["num_queries"] == 3 and sidecar["dim"] == model.dim


@pytest.mark.parametrize("change", ["weights", "text", "order", "query_prefix", "query_max_length", "truncate_dim"])
def test_anything_that_shapes_the_vectors_makes_a_new_entry(tmp_path: Path, change: str):
    model = tiny()
    query_embeddings(model, QUERIES, tmp_path)
    queries = dict(QUERIES)
    if change == "weights":
        with torch.no_grad():
            next(model.parameters()).add_(0.01)
    elif change == "text":
        queries["q2"] = "insulin resistance"
    elif change == "order":
        queries = dict(reversed(QUERIES.items()))
    else:
        model = tiny(**{change: {"query_prefix": "query: ", "query_max_length": 3, "truncate_dim": 16}[change]})
    again = query_embeddings(model, queries, tmp_path)
    assert len(_entries(tmp_path)) == 2
    assert np.allclose(again, encode_texts(model, list(queries.values()), "query", progress=False), atol=1e-6)


def test_the_document_side_settings_do_not_touch_the_query_entry(tmp_path: Path):
    query_embeddings(tiny(), QUERIES, tmp_path)
    query_embeddings(tiny(doc_prefix="passage: ", doc_max_length=5), QUERIES, tmp_path)
    assert len(_entries(tmp_path)) == 1


def test_a_corrupted_entry_is_encoded_again_never_used(tmp_path: Path, caplog):
    model = tiny()
    want = query_embeddings(model, QUERIES, tmp_path)
    [entry] = _entries(tmp_path)
    path = tmp_path / QUERY_EMBEDDINGS_CACHE / entry
    data = bytearray(path.read_bytes())
    data[-4:] = np.float32(np.nan).tobytes()
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        got = query_embeddings(model, QUERIES, tmp_path)
    assert np.array_equal(got, want) and any("bad cache entry" in m for m in caplog.messages)


def test_a_dense_retriever_searches_with_the_cached_embeddings(tiny_beir: Path, tmp_path: Path):
    dataset = load_beir(tiny_beir, "tiny", ["test"], download=False)
    model = tiny()
    corpus = corpus_embeddings(model, dataset, "{title} {text}", tmp_path / "embeddings", progress=False)
    index = FlatIndex(model.dim)
    index.build(corpus.embeddings)
    queries = dataset.split_queries("test")
    cached = DenseRetriever(model, index, corpus, batch_size=4, cache_dir=tmp_path)
    plain = DenseRetriever(model, index, corpus, batch_size=4)
    first, second = cached.retrieve(queries, 10), cached.retrieve(queries, 10)
    assert first.run == second.run == plain.retrieve(queries, 10).run
    assert np.array_equal(first.query_embeddings, second.query_embeddings) and len(_entries(tmp_path)) == 1
