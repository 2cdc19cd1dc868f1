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
from retrieval_lab.stages.teach import teach
from retrieval_lab.teachers import BiEncoderTeacher
from retrieval_lab.training.datamodule import ContrastiveDataModule
from retrieval_lab.training.training_set import judged_pairs
from retrieval_lab.training.module import loss_inputs
from retrieval_lab.training.training_set import corpus_sentences
from tests.conftest import run_rlab
from tests.test_model import TINY, tiny

TEMPLATE = "{title} {text}"
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
                        f"model.query.path={other}", "trainer.max_epochs=5", "optimizer.lr=3e-3",
                        "data.pseudo_queries=40"], tmp_path / "student", tiny_beir)
    assert student.returncode == 0, student.stderr[-3000:]
    record = json.loads((tmp_path / "student" / "run.json").read_text())
    assert record["teacher"]["provides"] == ["teacher_query"]
    assert record["teacher"]["query_embeddings"] == {"queries": 30, "pseudo_queries": 40, "dim": 32}
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


def test_the_in_batch_teacher_scores_every_query_against_every_column(tiny_beir: Path):
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    model = tiny()
    corpus_ids = list(dataset.corpus)
    negatives = {q: [(corpus_ids[-1 - i], None), (corpus_ids[i], None)] for i, q in enumerate(dataset.qrels["train"])}
    training_set = judged_pairs(dataset, "train", TEMPLATE).with_negatives(negatives, 1, seed=0)
    torch.manual_seed(3)
    teacher = BiEncoderTeacher(BiEncoder(**TINY))  # another random model than the student
    taught, record = teach(training_set, frozenset({"teacher_batch"}), None, "unused", in_batch_teacher=teacher)
    assert training_set.in_batch_teacher is None  # the stage gives a new training set
    assert record["in_batch"]["queries"] == 30
    assert record["in_batch"]["documents"] == len({d for _, d in training_set.scored_pairs()})
    dm = ContrastiveDataModule(taught, model.tokenization, 4, seed=0)
    pairs = list(taught.pairs[:4])
    batch = dm.collate(pairs)
    inputs = loss_inputs(model, batch, gather=False)
    columns = [corpus_ids[k] for k in batch["doc_keys"].tolist()]
    expected = (teacher.query_embeddings(dataset, [p.query_id for p in pairs])
                @ teacher.doc_embeddings(dataset, columns, TEMPLATE).T)
    assert inputs.teacher_batch.shape == (4, 8)
    torch.testing.assert_close(inputs.teacher_batch, torch.from_numpy(expected), rtol=1e-4, atol=1e-5)


def test_dual_teacher_end_to_end(tmp_path: Path, tiny_beir: Path, tiny_args):
    torch.manual_seed(3)
    in_batch = export_model(BiEncoder(**TINY), tmp_path / "in_batch")
    result = run_rlab([*tiny_args, "miner=bm25", "miner.num_negatives=2", "teacher=bm25", "objective=dual_teacher",
                       f"in_batch_teacher.path={in_batch}"], tmp_path / "run", tiny_beir)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["teacher"]["provides"] == ["teacher_batch", "teacher_pairs"]
    assert record["teacher"]["in_batch"]["kind"] == "bi_encoder" and record["teacher"]["in_batch"]["queries"] == 30
    assert record["metrics"]["ndcg@10"] > 0


def test_teachers_must_match_what_the_objective_reads(tmp_path: Path, tiny_beir: Path, tiny_args):
    cases = [
        (["miner=bm25", "objective=margin_mse"], "teacher: the objective reads ['teacher_pairs'] from a teacher"),
        (["miner=bm25", "teacher=bm25", "objective=dual_teacher"], "in_batch_teacher.path"),
        (["in_batch_teacher={_target_: retrieval_lab.teachers.BiEncoderTeacher, path: x}"],
         "in_batch_teacher: the objective reads no in-batch teacher scores"),
        (["miner=bm25", "teacher=bm25", "objective=dual_teacher", "in_batch_teacher.path=x",
          "in_batch_teacher._target_=retrieval_lab.teachers.CrossEncoderTeacher"],
         "in_batch_teacher._target_: the in-batch teacher scores B x N pairs"),
    ]
    for i, (overrides, message) in enumerate(cases):
        result = run_rlab([*tiny_args, *overrides], tmp_path / str(i), tiny_beir)
        assert result.returncode == 2 and message in result.stderr, (overrides, result.stderr[-2000:])


def test_corpus_sentences_are_seeded_draws_of_whole_sentences(tiny_beir: Path):
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    everything = corpus_sentences(dataset, 10**6, seed=0, min_words=1)
    texts = " ".join(f"{d.title} {d.text}" for d in dataset.corpus.values())
    assert everything and all(sentence in texts for sentence in everything)
    drawn = corpus_sentences(dataset, 10, seed=1, min_words=1)
    assert len(set(drawn)) == 10 and set(drawn) <= set(everything)
    assert drawn == corpus_sentences(dataset, 10, seed=1, min_words=1) != corpus_sentences(dataset, 10, seed=2, min_words=1)


def test_a_query_only_objective_refuses_document_side_settings(tmp_path: Path, tiny_beir: Path, tiny_args):
    distil = ["objective=embed_distill", "teacher=bi_encoder", "teacher.path=x"]
    cases = [
        ([*distil, "miner=bm25"], "miner: the objective reads query embeddings only"),
        ([*distil, "data.val_queries=5"], "data.val_queries: the objective reads query embeddings only"),
        (["data.pseudo_queries=10"], "data.pseudo_queries: pseudo-queries train a query-only objective"),
    ]
    for i, (overrides, message) in enumerate(cases):
        result = run_rlab([*tiny_args, *overrides], tmp_path / str(i), tiny_beir)
        assert result.returncode == 2 and message in result.stderr, (overrides, result.stderr[-2000:])
