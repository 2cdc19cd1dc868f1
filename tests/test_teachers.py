"""Teachers score pairs as their models say; ensembles normalize per query; scores are cached
once per (teacher, data, pairs) and the file format is checked line by line."""

from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder as STCrossEncoder

from retrieval_lab.data.beir import document_text, load_beir
from retrieval_lab.encoding import encode_texts
from retrieval_lab.errors import DataError
from retrieval_lab.lexical import BM25Index
from retrieval_lab.models.cross_encoder import CrossEncoder
from retrieval_lab.teachers import (BiEncoderTeacher, BM25Teacher, CrossEncoderTeacher, EnsembleTeacher,
                                    cached_teacher_scores, normalize_per_query, read_scores)
from tests.test_model import TINY, tiny

TEMPLATE = "{title} {text}"
PAIRS = [("q0", "d0"), ("q0", "d5"), ("q1", "d1"), ("q1", "d7"), ("q1", "d9")]


@pytest.fixture
def data(tiny_beir: Path):
    return load_beir(tiny_beir, "tiny", ["train"], download=False)


def tiny_cross_encoder(seed: int = 0) -> CrossEncoder:
    torch.manual_seed(seed)
    return CrossEncoder(TINY["name_or_path"], max_length=64, random_init=True,
                        config_overrides=TINY["config_overrides"])


def test_bi_encoder_teacher_scores_are_embedding_inner_products(data):
    model = tiny()
    scores = BiEncoderTeacher(model).score(data, PAIRS, TEMPLATE)
    for (q, d), score in zip(PAIRS, scores):
        query = encode_texts(model, [data.queries[q]], "query", 8, False)[0]
        doc = encode_texts(model, [document_text(data.corpus[d], TEMPLATE)], "doc", 8, False)[0]
        assert score == pytest.approx(float(query @ doc), abs=1e-5)


def test_bm25_teacher_scores_are_bm25s_scores(data):
    scores = BM25Teacher().score(data, PAIRS, TEMPLATE)
    index = BM25Index()
    index.build(list(data.corpus), [document_text(d, TEMPLATE) for d in data.corpus.values()])
    for (q, d), score in zip(PAIRS, scores):
        assert score == pytest.approx(float(index.score(data.queries[q], [d])[0]), rel=1e-6)
    assert scores[0] > 0  # q0's own document shares its words


def test_cross_encoder_exports_what_sentence_transformers_loads(data, tmp_path: Path):
    model = tiny_cross_encoder()
    scores = CrossEncoderTeacher(model).score(data, PAIRS, TEMPLATE)
    path = model.export(tmp_path / "ce")
    again = CrossEncoderTeacher(str(path), max_length=64).score(data, PAIRS, TEMPLATE)
    np.testing.assert_allclose(again, scores, atol=1e-5)
    texts = [(data.queries[q], document_text(data.corpus[d], TEMPLATE)) for q, d in PAIRS]
    st = STCrossEncoder(str(path), max_length=64, activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(st.predict(texts), scores, atol=1e-4)


def test_ensemble_normalizes_each_member_per_query_then_weights():
    raw = np.array([1.0, 3.0, 10.0, 20.0, 30.0])
    queries = [q for q, _ in PAIRS]
    z = normalize_per_query(raw, queries, "zscore")
    np.testing.assert_allclose(z, [-1, 1, -1.2247449, 0, 1.2247449], atol=1e-6)
    np.testing.assert_allclose(normalize_per_query(raw, queries, "minmax"), [0, 1, 0, 0.5, 1])
    np.testing.assert_allclose(normalize_per_query(np.array([2.0, 2.0]), ["q", "q"], "zscore"), [0, 0])

    class Fixed:
        def __init__(self, values):
            self.values = np.array(values, dtype=np.float32)

        def fingerprint(self):
            return {"kind": "fixed"}

        def score(self, dataset, pairs, doc_template):
            return self.values

    ensemble = EnsembleTeacher([Fixed(raw), Fixed([0, 1, 1, 1, 0])], weights=[2.0, 1.0], normalization="minmax")
    expected = 2 * normalize_per_query(raw, queries, "minmax") + np.array([0, 1, 1, 1, 0])  # already in [0, 1]
    np.testing.assert_allclose(ensemble.score(None, PAIRS, TEMPLATE), expected)
    with pytest.raises(ValueError, match="2 teachers but 1 weights"):
        EnsembleTeacher([Fixed(raw), Fixed(raw)], weights=[1.0])


def test_scores_are_cached_and_a_changed_teacher_invalidates_them(data, tmp_path: Path, monkeypatch):
    teacher = CrossEncoderTeacher(tiny_cross_encoder(0))
    first, path, record = cached_teacher_scores(teacher, data, "train", PAIRS, TEMPLATE, tmp_path)
    assert not record["cache_hit"] and len(first) == len(PAIRS) and record["pairs"] == len(PAIRS)
    monkeypatch.setattr(CrossEncoderTeacher, "score", lambda *a: pytest.fail("scored again on a cache hit"))
    again, same, record = cached_teacher_scores(teacher, data, "train", list(reversed(PAIRS)), TEMPLATE, tmp_path)
    assert record["cache_hit"] and same == path and again == pytest.approx(first)
    monkeypatch.undo()
    changed = CrossEncoderTeacher(tiny_cross_encoder(1))  # other weights
    _, other, record = cached_teacher_scores(changed, data, "train", PAIRS, TEMPLATE, tmp_path)
    assert other != path and not record["cache_hit"]
    _, fewer, record = cached_teacher_scores(teacher, data, "train", PAIRS[:3], TEMPLATE, tmp_path)
    assert fewer not in (path, other) and not record["cache_hit"]  # other negatives, another file


@pytest.mark.parametrize(("line", "message"), [
    ('{"query_id": "q1", "doc_ids": ["d1"]', "malformed JSON"),
    ('{"query_id": "q1", "doc_ids": ["d1"], "scores": [1, 2]}', "'scores' must be a list of 1 numbers"),
    ('{"query_id": "q1", "doc_ids": ["zz"], "scores": [1]}', "'zz' is not in the corpus"),
    ('{"query_id": "q0", "doc_ids": ["d1"], "scores": [1]}', "scored twice"),
])
def test_bad_scores_files_name_the_file_and_line(tmp_path: Path, line, message):
    path = tmp_path / "scores.jsonl"
    path.write_text('{"query_id": "q0", "doc_ids": ["d1"], "scores": [0.5]}\n' + line + "\n")
    with pytest.raises(DataError, match=rf"{path}:2: .*{message}"):
        read_scores(path, {"d1": None, "d2": None})
