"""Teachers and miners chosen on the command line, end to end on the tiny corpus: each run's record
(run.json's ``teacher`` and ``mining``), its ``training_set/`` and its metrics say the component
was used as configured.

teacher=cross_encoder, ensemble and file each need a miner (a teacher scores each query's positive
against its hard negatives), so each run pairs one teacher with one miner; dense_refresh changes
negatives during training, which teacher scores cannot follow, so it runs without a teacher."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from retrieval_lab.data.beir import load_beir
from retrieval_lab.mining.negatives_file import read_negatives
from retrieval_lab.teachers import BM25Teacher, CrossEncoderTeacher, EnsembleTeacher
from retrieval_lab.teachers.scores_file import read_scores
from tests.conftest import TINY, run_rlab, write_tiny_beir
from tests.test_teachers import tiny_cross_encoder

TEMPLATE = "{title} {text}"  # data.doc_template's default
ONE_EPOCH = [*TINY, "trainer.max_epochs=1"]
DISTIL = ["objective=infonce_margin_mse"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_tiny_beir(root)
    return root


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory) -> Path:
    """An exported random tiny cross-encoder, as `rlab experiment=scifact_cross_encoder` leaves one."""
    return tiny_cross_encoder(seed=3).export(tmp_path_factory.mktemp("ce") / "model")


@pytest.fixture(scope="module")
def dataset(data_root):
    return load_beir(data_root, "tiny", ["train"], download=False)


def _run(args: list[str], run_dir: Path, data_root: Path) -> dict:
    result = run_rlab([*ONE_EPOCH, *args], run_dir, data_root)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "done" and record["error"] is None
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert record["metrics"] == metrics and {"ndcg@10", "recall@10", "recall@100"} <= set(metrics)
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in metrics.values()), metrics
    assert (run_dir / "model" / "modules.json").is_file()
    return record


def _pools(run_dir: Path, dataset) -> dict[str, list[tuple[str, float | None]]]:
    """The negative pools training read (training_set/negatives.jsonl); none holds a positive."""
    pools = read_negatives(run_dir / "training_set" / "negatives.jsonl", dataset.corpus)
    assert set(pools) == set(dataset.qrels["train"])  # 30 training queries
    for query_id, pool in pools.items():
        assert not {d for d, _ in pool} & set(dataset.qrels["train"][query_id]), query_id
    return pools


def _taught(run_dir: Path, dataset, pools) -> dict[tuple[str, str], float]:
    """The teacher scores training read: one per (query, positive) and (query, pool negative)."""
    scores = read_scores(run_dir / "training_set" / "teacher_scores.jsonl", dataset.corpus)
    expected = {(q, d) for q, docs in dataset.qrels["train"].items() for d in docs}
    expected |= {(q, d) for q, pool in pools.items() for d, _ in pool}
    assert set(scores) == expected
    return scores


def test_cross_encoder_teacher_with_dense_negatives(tmp_path: Path, data_root, dataset, cross_encoder):
    run_dir = tmp_path / "run"
    record = _run([*DISTIL, "teacher=cross_encoder", f"teacher.path={cross_encoder}", "teacher.max_length=96",
                   "miner=dense", "miner.num_negatives=2", "miner.rank_range=[1,10]"], run_dir, data_root)
    mining = record["mining"]
    assert mining["miner"] == "dense" and mining["queries"] == 30 and mining["cache_hit"] is False
    pools = _pools(run_dir, dataset)
    assert all(len(pool) == 2 and all(s is not None for _, s in pool) for pool in pools.values())
    # dense scores are inner products of normalized embeddings, best first
    assert all(1 >= pool[0][1] >= pool[1][1] >= -1 for pool in pools.values())
    teacher = record["teacher"]
    assert teacher["kind"] == "cross_encoder" and teacher["provides"] == ["teacher_pairs"]
    assert teacher["scores"]["pairs"] == 30 * 3 and teacher["scores"]["cache_hit"] is False
    scores = _taught(run_dir, dataset, pools)
    pairs = sorted(scores)
    again = CrossEncoderTeacher(str(cross_encoder), max_length=96).score(dataset, pairs, TEMPLATE)
    np.testing.assert_allclose([scores[p] for p in pairs], again, atol=1e-5)


def test_ensemble_teacher_with_star_negatives(tmp_path: Path, data_root, dataset, cross_encoder):
    run_dir = tmp_path / "run"
    record = _run([*DISTIL, "teacher=ensemble", f"teacher.teachers.0.path={cross_encoder}",
                   "teacher.teachers.0.max_length=96", "miner=star", "miner.num_negatives=2",
                   "miner.random_negatives=1", "miner.rank_range=[1,10]"], run_dir, data_root)
    mining = record["mining"]
    assert mining["miner"] == "star" and mining["queries"] == 30
    pools = _pools(run_dir, dataset)
    for pool in pools.values():  # STAR: 2 dense (scored) negatives and 1 random (unscored) one
        assert len(pool) == 3 and sum(s is None for _, s in pool) == 1 and len({d for d, _ in pool}) == 3
    teacher = record["teacher"]
    assert teacher["kind"] == "ensemble" and teacher["scores"]["pairs"] == 30 * 4
    members = teacher["scores"]["teacher"]["members"]
    assert [m["kind"] for m in members] == ["cross_encoder", "bm25"]
    scores = _taught(run_dir, dataset, pools)
    pairs = sorted(scores)
    ensemble = EnsembleTeacher([CrossEncoderTeacher(str(cross_encoder), max_length=96), BM25Teacher()],
                               weights=[1.0, 0.5], normalization="zscore")
    np.testing.assert_allclose([scores[p] for p in pairs], ensemble.score(dataset, pairs, TEMPLATE), atol=1e-4)
    for query_id in pools:  # each member z-scored over the query's 4 pairs: they sum to 0
        assert abs(sum(v for (q, _), v in scores.items() if q == query_id)) < 1e-4


def test_file_teacher_with_bm25_negatives(tmp_path: Path, data_root, dataset):
    corpus = list(dataset.corpus)
    path = tmp_path / "scores.jsonl"  # every training query against every document
    given = {(q, d): float(i * 100 + j) / 7 for i, q in enumerate(dataset.qrels["train"]) for j, d in enumerate(corpus)}
    path.write_text("".join(json.dumps({"query_id": q, "doc_ids": corpus, "scores": [given[(q, d)] for d in corpus]})
                            + "\n" for q in dataset.qrels["train"]))
    run_dir = tmp_path / "run"
    record = _run([*DISTIL, "teacher=file", f"teacher.path={path}", "miner=bm25", "miner.num_negatives=2"],
                  run_dir, data_root)
    assert record["mining"]["miner"] == "bm25"
    teacher = record["teacher"]
    assert teacher["kind"] == "file" and teacher["scores"]["pairs"] == 30 * 3
    pools = _pools(run_dir, dataset)
    scores = _taught(run_dir, dataset, pools)
    assert scores == pytest.approx({p: given[p] for p in scores}, rel=1e-6)  # stored as float32


def test_dense_refresh_negatives_are_re_mined_during_training(tmp_path: Path, data_root, dataset):
    run_dir = tmp_path / "run"
    record = _run(["miner=dense_refresh", "miner.refresh_every_n_steps=2", "miner.num_negatives=2",
                   "miner.rank_range=[1,10]"], run_dir, data_root)
    mining = record["mining"]
    assert mining["miner"] == "dense_refresh" and mining["queries"] == 30
    refreshes = mining["refreshes"]
    assert [r["step"] for r in refreshes] == [2, 4]  # 4 steps: 30 pairs in batches of 8
    assert all(0 <= r["changed"] <= 1 for r in refreshes) and any(r["changed"] > 0 for r in refreshes)
    assert "teacher" not in record or not record["teacher"]
    pools = _pools(run_dir, dataset)
    assert all(len(pool) == 2 for pool in pools.values())
