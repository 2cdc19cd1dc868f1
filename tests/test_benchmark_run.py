"""`rlab benchmark=beir_small` end to end on tiny BEIR-layout stand-ins for SciFact and ArguAna:
one run trains on the first and evaluates on both, each into its own directory with benchmark.json's
mean over them; a missing dataset is skipped with its reason; a run killed between two datasets
resumes without indexing the finished one again and ends with an uninterrupted run's files."""

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import run_rlab, write_tiny_beir
from tests.test_resume import _kill_when, _launch, _resume

ARGS = ["model=tiny", "benchmark=beir_small", "data.download=false", "trainer.precision=32-true", "encode_precision=32-true",
        "data.batch_size=8", "optimizer.lr=1e-3", "evaluator.k=20", "logger=csv"]
PER_DATASET = ("metrics.json", "metrics_per_query.tsv", "run.trec")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """``scifact`` and ``arguana`` as small valid datasets; the ArguAna one has no train split and
    one qrel whose document is not in the corpus, as BEIR's has."""
    root = tmp_path_factory.mktemp("data")
    write_tiny_beir(root, "scifact", n_docs=80, n_queries=80)
    arguana = write_tiny_beir(root, "arguana", n_docs=60, n_queries=40)
    (arguana / "qrels" / "train.tsv").unlink()
    with (arguana / "qrels" / "test.tsv").open("a") as qrels:
        qrels.write("q35\tgone-from-the-corpus\t1\n")
    return root


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_trains_on_scifact_and_evaluates_on_both_with_their_mean(tmp_path: Path, data_root: Path):
    run_dir = tmp_path / "run"
    result = run_rlab([*ARGS, "trainer.max_epochs=1"], run_dir, data_root)
    assert result.returncode == 0, result.stderr[-3000:]
    benchmark = _json(run_dir / "benchmark.json")
    assert benchmark["mean_over"] == ["scifact", "arguana"] and benchmark["skipped"] == {}
    per_dataset = {name: _json(run_dir / name / "metrics.json")["metrics"] for name in ("scifact", "arguana")}
    for name, metrics in per_dataset.items():
        assert benchmark["datasets"][name]["metrics"] == metrics
        assert all((run_dir / name / f).is_file() for f in PER_DATASET)
    task = {"scifact": "SciFact", "arguana": "ArguAna"}
    for name, metrics in per_dataset.items():
        mteb = _json(run_dir / name / "mteb" / f"{task[name]}.json")
        assert mteb["scores"]["test"][0]["main_score"] == pytest.approx(metrics["ndcg@10"])
    assert benchmark["mean"]["ndcg@10"] == pytest.approx((per_dataset["scifact"]["ndcg@10"]
                                                          + per_dataset["arguana"]["ndcg@10"]) / 2)
    record = _json(run_dir / "run.json")
    assert record["status"] == "done" and record["metrics"] == benchmark["mean"]
    assert {"train", "index/scifact", "evaluate/scifact", "index/arguana", "evaluate/arguana"} <= set(record["stages"])
    # ArguAna's dangling qrel is counted where the run read it, and its query still scores (0 for that doc).
    assert record["benchmark_data"]["arguana"]["quirks"]["test"]["qrels_docs_not_in_corpus"] == 1
    assert benchmark["datasets"]["arguana"]["num_queries"] == 10


def test_a_dataset_missing_without_network_is_skipped_with_its_reason(tmp_path: Path, data_root: Path):
    run_dir = tmp_path / "run"
    result = run_rlab([*ARGS, "stages=[index,evaluate]", "benchmark.datasets=[fiqa,scifact]"], run_dir, data_root)
    assert result.returncode == 0, result.stderr[-3000:]
    benchmark = _json(run_dir / "benchmark.json")
    assert benchmark["mean_over"] == ["scifact"]
    assert "fiqa" in benchmark["skipped"] and "data.download=false" in benchmark["skipped"]["fiqa"]
    assert "benchmark: skipping fiqa" in (run_dir / "rlab.log").read_text()
    assert benchmark["mean"] == benchmark["datasets"]["scifact"]["metrics"]


def test_killed_between_datasets_and_resumed_ends_as_an_uninterrupted_run(tmp_path: Path, data_root: Path):
    args = [*ARGS, "stages=[index,evaluate]"]
    reference = tmp_path / "reference"
    assert run_rlab(args, reference, data_root).returncode == 0
    run_dir = tmp_path / "killed"
    process = _launch(run_dir, data_root, args)
    assert _kill_when(process, run_dir / "rlab.log", "stage index/arguana: start", signal.SIGKILL) is not None
    assert _json(run_dir / "run.json")["stages"]["evaluate/scifact"]["status"] == "done"
    finished = _resume(run_dir, data_root)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert f"reusing the run's index: {run_dir / 'scifact' / 'index'}" in (run_dir / "rlab.log").read_text()
    for name in ("scifact", "arguana"):
        for file in PER_DATASET:
            assert (run_dir / name / file).read_bytes() == (reference / name / file).read_bytes(), (name, file)
    assert _json(run_dir / "benchmark.json") == _json(reference / "benchmark.json")
    assert _json(run_dir / "run.json")["status"] == "done"
