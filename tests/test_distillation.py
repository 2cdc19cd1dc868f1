"""Distillation end to end on the tiny corpus: the teach stage scores the training pairs once,
the scores reach the losses, each term of a weighted sum is logged, and bad set-ups fail early."""

import csv
import json
from pathlib import Path

import torch

from retrieval_lab.data.beir import load_beir
from retrieval_lab.encoding import encode_texts
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.models.export import export_model
from tests.conftest import run_rlab
from tests.test_model import TINY, tiny

DISTIL = ["miner=bm25", "miner.num_negatives=2", "teacher=bm25", "objective=infonce_margin_mse"]


def test_teacher_scores_are_computed_once_and_every_term_is_logged(tmp_path: Path, tiny_beir: Path, tiny_args):
    first = run_rlab([*tiny_args, *DISTIL], tmp_path / "first", tiny_beir)
    assert first.returncode == 0, first.stderr[-3000:]
    record = json.loads((tmp_path / "first" / "run.json").read_text())
    assert list(record["stages"]) == ["mine", "teach", "train", "index", "evaluate"]
    teacher = record["teacher"]["scores"]
    assert record["teacher"]["kind"] == "bm25" and record["teacher"]["provides"] == ["teacher_pairs"]
    assert teacher["cache_hit"] is False and teacher["teacher"]["kind"] == "bm25"
    assert teacher["pairs"] == 30 * 3 and Path(teacher["file"]).is_file()  # positive + 2 negatives each
    with open(tmp_path / "first" / "csv" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    logged = [r for r in rows if r.get("train/margin_mse")]
    assert logged and all(float(r["train/margin_mse"]) >= 0 and float(r["train/infonce"]) > 0 for r in logged)
    second = run_rlab([*tiny_args, *DISTIL, "objective.terms.margin_mse.weight=0.5"], tmp_path / "second", tiny_beir)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads((tmp_path / "second" / "run.json").read_text())["teacher"]["scores"]
    assert again["cache_hit"] is True and again["file"] == teacher["file"]


def test_a_teacher_without_negatives_fails_before_any_work(tmp_path: Path, tiny_beir: Path, tiny_args):
    result = run_rlab([*tiny_args, "teacher=bm25", "objective=margin_mse"], tmp_path / "run", tiny_beir)
    assert result.returncode == 2 and "teacher: a teacher scores each query's positive" in result.stderr
    assert not (tmp_path / "run" / "run.json").exists()


def test_a_distilled_query_tower_searches_the_teachers_index(tmp_path: Path, tiny_beir: Path, tiny_args):
    teacher = export_model(tiny(), tmp_path / "teacher")  # 2 layers
    torch.manual_seed(1)
    other = export_model(BiEncoder(**TINY), tmp_path / "other")  # another random start for the query tower
    args = [*tiny_args, f"model.name_or_path={teacher}", "model.random_init=false"]
    zero = run_rlab([*args, "stages=[index,evaluate]"], tmp_path / "zero", tiny_beir)
    assert zero.returncode == 0, zero.stderr[-3000:]
    student = run_rlab([*args, "experiment=scifact_query_tower", f"teacher.path={teacher}", "model.query.num_layers=1",
                        f"model.query.path={other}", "trainer.max_epochs=5", "optimizer.lr=3e-3"], tmp_path / "student", tiny_beir)
    assert student.returncode == 0, student.stderr[-3000:]
    record = json.loads((tmp_path / "student" / "run.json").read_text())
    assert record["teacher"]["provides"] == ["teacher_query"] and record["teacher"]["query_embeddings"]["queries"] == 30
    log = (tmp_path / "student" / "rlab.log").read_text()
    assert "embedding cache hit" in log  # the teacher's corpus embeddings, hence its index
    index_meta = [json.loads((tmp_path / run / "index" / "index.json").read_text()) for run in ("zero", "student")]
    assert index_meta[0]["embeddings_key"] == index_meta[1]["embeddings_key"]

    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    queries = list(dataset.split_queries("train").values())
    target = encode_texts(BiEncoder(str(teacher), query_max_length=32, doc_max_length=64), queries, "query", 16, False)
    start = BiEncoder(str(teacher), shared=False, query={"num_layers": 1, "path": str(other)}, query_max_length=32,
                      doc_max_length=64)
    trained = BiEncoder(str(tmp_path / "student" / "model"), query_max_length=32, doc_max_length=64)
    assert len(trained.tower("query").encoder.layer) == 1
    distance = {name: float(((encode_texts(m, queries, "query", 16, False) - target) ** 2).sum(1).mean())
                for name, m in (("start", start), ("trained", trained))}
    assert distance["trained"] < 0.5 * distance["start"]
