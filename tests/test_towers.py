"""Per-tower options: a smaller student keeps the first k layers, a frozen document tower keeps
the teacher's embeddings (and cache key, hence its index), and two-tower exports load back."""

from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval_lab.data.beir import load_beir
from retrieval_lab.embedding_cache import embeddings_key
from retrieval_lab.encoding import encode_texts
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.models.export import export_model
from tests.test_model import TEXTS, TINY, tiny


def _teacher(tmp_path: Path) -> tuple[BiEncoder, Path]:
    """A 4-layer tiny model, exported."""
    teacher = tiny(config_overrides={**TINY["config_overrides"], "num_hidden_layers": 4})
    return teacher, export_model(teacher, tmp_path / "teacher")


def test_a_student_query_tower_keeps_the_first_layers_against_the_frozen_teacher_docs(tmp_path: Path, tiny_beir):
    teacher, path = _teacher(tmp_path)
    student = BiEncoder(str(path), shared=False, query={"num_layers": 2}, doc={"frozen": True},
                        query_max_length=32, doc_max_length=64)
    assert len(student.tower("query").encoder.layer) == 2 and student.tower("query").config.num_hidden_layers == 2
    kept = {k: v for k, v in teacher.tower("query").state_dict().items() if not k.startswith("encoder.layer.")
            or int(k.split(".")[2]) < 2}
    for name, tensor in student.tower("query").state_dict().items():
        assert torch.equal(tensor, kept[name])
    assert not any(p.requires_grad for p in student.tower("doc").parameters())
    assert all(p.requires_grad for n, p in student.tower("query").named_parameters() if not n.startswith("pooler."))
    student.train()
    assert student.tower("query").training and not student.tower("doc").training
    docs = encode_texts(student, TEXTS, "doc", 8, False)
    teacher_docs = encode_texts(BiEncoder(str(path), query_max_length=32, doc_max_length=64), TEXTS, "doc", 8, False)
    np.testing.assert_allclose(docs, teacher_docs, atol=1e-6)
    dataset = load_beir(tiny_beir, "tiny", [], download=False)
    same = BiEncoder(str(path), query_max_length=32, doc_max_length=64)
    assert embeddings_key(student, dataset, "{title} {text}")[0] == embeddings_key(same, dataset, "{title} {text}")[0]


def test_two_tower_exports_load_back_as_two_towers(tmp_path: Path):
    _, path = _teacher(tmp_path)
    student = BiEncoder(str(path), shared=False, query={"num_layers": 1}, query_max_length=32, doc_max_length=64)
    export = export_model(student, tmp_path / "student")
    loaded = BiEncoder(str(export), query_max_length=32, doc_max_length=64)
    assert not loaded.shared and len(loaded.tower("query").encoder.layer) == 1
    assert len(loaded.tower("doc").encoder.layer) == 4
    for side in ("query", "doc"):
        np.testing.assert_allclose(encode_texts(loaded, TEXTS, side, 8, False),
                                   encode_texts(student, TEXTS, side, 8, False), atol=1e-6)


def test_tower_options_need_two_towers_and_a_sane_layer_count(tmp_path: Path):
    with pytest.raises(ValueError, match="set model.shared=false"):
        tiny(query={"num_layers": 1})
    with pytest.raises(ValueError, match="num_layers=5: the encoder has 2 layers"):
        tiny(shared=False, query={"num_layers": 5})
