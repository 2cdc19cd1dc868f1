"""The corpus embedding cache: hit on reuse, miss when anything that shapes the vectors changes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval_lab.data.beir import document_text, load_beir
from retrieval_lab.embedding_cache import corpus_embeddings
from retrieval_lab.encoding import encode_texts
from tests.test_model import tiny


@pytest.fixture
def dataset(tiny_beir: Path):
    return load_beir(tiny_beir, "tiny", ["test"], download=False)


def _embed(model, dataset, cache: Path, template="{title} {text}", **kwargs):
    return corpus_embeddings(model, dataset, template, cache, batch_size=16, progress=False, **kwargs)


def test_second_call_hits_and_memory_maps(dataset, tmp_path: Path):
    model = tiny()
    cache = tmp_path / "cache"
    first = _embed(model, dataset, cache)
    second = _embed(model, dataset, cache)
    assert not first.from_cache and second.from_cache and first.key == second.key
    assert isinstance(second.embeddings, np.memmap) and not second.embeddings.flags.writeable
    assert second.doc_ids == list(dataset.corpus)
    direct = encode_texts(model, [document_text(dataset.corpus[d]) for d in second.doc_ids], "doc", progress=False)
    assert np.allclose(second.embeddings, direct, atol=1e-6)
    meta = json.loads((second.path / "meta.json").read_text())
    assert meta["num_docs"] == 60 and meta["encoding"]["pooling"] == "mean"
    assert sorted(p.name for p in cache.iterdir()) == [first.key, f"{first.key}.lock"]  # no temp directories left


def test_chunked_encoding_gives_the_same_matrix(dataset, tmp_path: Path):
    model = tiny()
    whole = _embed(model, dataset, tmp_path / "a")
    chunked = _embed(model, dataset, tmp_path / "b", chunk_size=7)
    assert whole.key == chunked.key
    assert np.allclose(whole.embeddings, chunked.embeddings, atol=1e-6)


@pytest.mark.parametrize(
    "change",
    ["weights", "pooling", "normalize", "doc_prefix", "doc_max_length", "truncate_dim", "template", "corpus",
     "encode_precision"],
)
def test_any_key_part_changing_misses(dataset, tmp_path: Path, change):
    base = _embed(tiny(), dataset, tmp_path)
    model, template = tiny(), "{title} {text}"
    if change == "weights":
        with torch.no_grad():
            next(model.parameters()).add_(1e-3)
    elif change == "pooling":
        model = tiny(pooling="cls")
    elif change == "normalize":
        model = tiny(normalize=False)
    elif change == "doc_prefix":
        model = tiny(doc_prefix="passage: ")
    elif change == "doc_max_length":
        model = tiny(doc_max_length=32)
    elif change == "truncate_dim":
        model = tiny(truncate_dim=8)
    elif change == "template":
        template = "{text}"
    elif change == "encode_precision":
        model.encode_in("bf16-mixed")
    elif change == "corpus":
        corpus = dataset.path / "corpus.jsonl"
        corpus.write_text(corpus.read_text().replace("Study 3", "Study three"))
    changed = _embed(model, dataset, tmp_path, template=template)
    assert changed.key != base.key and not changed.from_cache
    assert changed.embeddings.shape[1] == model.dim


def test_a_mismatched_entry_is_rebuilt_not_loaded(dataset, tmp_path: Path, caplog):
    first = _embed(tiny(), dataset, tmp_path)
    (first.path / "doc_ids.txt").write_text("d1\n")  # one doc id for 60 rows
    again = _embed(tiny(), dataset, tmp_path)
    assert f"bad cache entry {first.path}: doc_ids.txt is 3 bytes, its sidecar says 230" in caplog.text
    assert not again.from_cache and again.doc_ids == first.doc_ids
    assert np.array_equal(again.embeddings, first.embeddings)


def test_an_interrupted_encoding_leaves_no_entry(dataset, tmp_path: Path, monkeypatch):
    calls = []

    def crash_on_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return encode_texts(*args, **kwargs)

    monkeypatch.setattr("retrieval_lab.embedding_cache.encode_texts", crash_on_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        _embed(tiny(), dataset, tmp_path / "cache", chunk_size=7)
    assert len(calls) == 2 and [p.suffix for p in (tmp_path / "cache").iterdir()] == [".lock"]
    monkeypatch.undo()
    assert not _embed(tiny(), dataset, tmp_path / "cache").from_cache


def test_bf16_encoding_is_close_to_fp32_and_fp32_ignores_an_outer_autocast(dataset):
    """encode_precision bf16-mixed runs the forward under bf16 autocast; 32-true is fp32 even
    inside a caller's bf16 autocast (a refresh or validation during bf16 training)."""
    model = tiny()
    texts = [document_text(doc) for doc in dataset.corpus.values()]
    fp32 = encode_texts(model, texts, "doc", 16, progress=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert np.array_equal(encode_texts(model, texts, "doc", 16, progress=False), fp32)
    model.encode_in("bf16-mixed")
    bf16 = encode_texts(model, texts, "doc", 16, progress=False)
    assert bf16.dtype == np.float32 and not np.array_equal(bf16, fp32)
    cosine = (bf16 * fp32).sum(axis=1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(fp32, axis=1)
    assert cosine.min() > 0.999
    assert model.encoding_contract()["encode_precision"] == "bf16-mixed"
    with pytest.raises(ValueError, match="encode precision '16-mixed'"):
        model.encode_in("16-mixed")
