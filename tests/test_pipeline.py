"""End to end through the CLI on a tiny BEIR dataset: the run directory and its contents."""

import csv
import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
import yaml
from sentence_transformers import SentenceTransformer

from retrieval_lab.data.beir import document_text, load_beir
from retrieval_lab.evaluation import evaluate, read_run
from tests.conftest import REPO, TINY, run_rlab, write_tiny_beir


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """One full tiny train -> index -> evaluate run: (run dir, data root)."""
    root = tmp_path_factory.mktemp("data")
    write_tiny_beir(root)
    run_dir = tmp_path_factory.mktemp("runs") / "full"
    result = run_rlab([*TINY, "data.val_queries=5", "data.val_distractors=10"], run_dir, root)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, root


@pytest.fixture(scope="module")
def zero_shot_run(tiny_run) -> Path:
    """The same model (same seed, hence the same random initialisation), data and settings as
    ``tiny_run``, untrained: stages=[index,evaluate]."""
    run_dir, root = tiny_run
    zero_shot = run_dir.parent / "zero_shot"
    result = run_rlab([*TINY, "stages=[index,evaluate]"], zero_shot, root)
    assert result.returncode == 0, result.stderr[-3000:]
    return zero_shot


def test_run_directory_holds_the_whole_record(tiny_run):
    run_dir, root = tiny_run
    for name in ["config.yaml", ".hydra/config.yaml", ".hydra/overrides.yaml", "metrics.json",
                 "metrics_per_query.tsv", "run.trec", "rlab.log", "run.json", "encoding.json",
                 "model/modules.json", "index/index.faiss", "index/index.json", "index/doc_ids.txt",
                 "checkpoints/last.ckpt", "csv/metrics.csv"]:
        assert (run_dir / name).is_file(), name
    record = json.loads((run_dir / "run.json").read_text())
    stages = record["stages"]
    assert list(stages) == ["train", "index", "evaluate"]
    assert all(s["status"] == "done" and s["seconds"] > 0 and s["peak_rss_mb"] > 0 for s in stages.values())
    assert record["status"] == "done" and record["error"] is None and record["wall_seconds"] > 0
    assert record["seed"] == 42 and "model=tiny" in record["overrides"]
    assert record["overrides"] == yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    assert record["job"] == {"mode": "RUN", "num": None, "sweep_dir": None}
    assert len(record["git"]["commit"]) == 40 and isinstance(record["git"]["dirty"], bool)
    assert {"python", "torch", "transformers", "faiss-cpu", "retrieval_lab"} <= set(record["versions"])
    assert record["hardware"]["cpu_count"] >= 1 and record["hardware"]["memory_gb"] > 0
    assert record["precision"]["train"] == {"precision": "32-true", "requested": "32-true", "device": "cpu",
                                            "reason": "set explicitly (trainer.precision)"}
    assert record["precision"]["encode"]["precision"] == "32-true"
    data = root / "tiny"
    assert record["data"]["sha256"] == {
        name: hashlib.sha256((data / name).read_bytes()).hexdigest()
        for name in ["corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/test.tsv"]
    }
    assert record["metrics"] == json.loads((run_dir / "metrics.json").read_text())["metrics"]
    assert set(record["validation"]) == {"val/ndcg@10", "val/recall@100"}
    assert {"metrics.json", "metrics_per_query.tsv", "run.trec", "model"} <= set(record["files"])
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["random_init"] is True and config["trainer"]["max_epochs"] == 2
    assert "stage evaluate: done" in (run_dir / "rlab.log").read_text()
    assert json.loads((run_dir / "encoding.json").read_text())["pooling"] == "mean"
    assert not list(run_dir.rglob("*.tmp"))


def test_metrics_agree_with_the_run_file_and_pytrec_eval(tiny_run):
    run_dir, root = tiny_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_queries"] == 10
    qrels = load_beir(root, "tiny", ["test"], download=False).qrels["test"]
    run = read_run(run_dir / "run.trec")
    assert all(len(docs) == 20 for docs in run.values())  # evaluator.k=20
    overall, per_query = evaluate(qrels, run, list(metrics["metrics"]))
    assert overall == pytest.approx(metrics["metrics"], abs=1e-12)
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10"}).evaluate(run)
    for qid, values in trec.items():
        assert per_query[qid]["ndcg@10"] == pytest.approx(values["ndcg_cut_10"], abs=1e-6)
    with open(run_dir / "metrics_per_query.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert {r["query_id"] for r in rows} == set(qrels)
    assert np.mean([float(r["ndcg@10"]) for r in rows]) == pytest.approx(overall["ndcg@10"], abs=1e-5)


def test_training_learned_and_validation_was_logged(tiny_run, zero_shot_run):
    run_dir, _ = tiny_run
    trained = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    untrained = json.loads((zero_shot_run / "metrics.json").read_text())["metrics"]
    assert json.loads((zero_shot_run / "run.json").read_text())["seed"] == 42
    # measured at 3234da0: nDCG@10 0.290 trained vs 0.246 zero-shot, recall@10 0.6 vs 0.5
    assert trained["ndcg@10"] > untrained["ndcg@10"] + 0.03, (trained, untrained)
    assert trained["recall@10"] > untrained["recall@10"] and trained["recall@10"] > 0.5
    with open(run_dir / "csv" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    val = [float(r["val/ndcg@10"]) for r in rows if r.get("val/ndcg@10")]
    assert len(val) == 2  # one per epoch
    # the validation nDCG@10 of the 5 held-out queries rises (measured 0.826 -> 0.900)
    assert val[1] > val[0] + 0.03, val
    assert record_validation(run_dir) == pytest.approx(val[-1])


def record_validation(run_dir: Path) -> float:
    """run.json's last validation nDCG@10."""
    return json.loads((run_dir / "run.json").read_text())["validation"]["val/ndcg@10"]


def test_exported_model_reproduces_the_indexed_embeddings(tiny_run):
    run_dir, root = tiny_run
    dataset = load_beir(root, "tiny", ["test"], download=False)
    doc_ids = (run_dir / "index" / "doc_ids.txt").read_text().split()
    texts = [document_text(dataset.corpus[d]) for d in doc_ids]
    st = SentenceTransformer(str(run_dir / "model"), device="cpu")
    exported = st.encode(texts, prompt_name="document")
    cached = Path(json.loads((run_dir / "index" / "index.json").read_text())["embeddings_path"])
    assert np.allclose(exported, np.load(cached / "embeddings.npy"), atol=1e-5)


def test_zero_shot_stages_skip_training(zero_shot_run):
    run_dir = zero_shot_run
    assert list(json.loads((run_dir / "run.json").read_text())["stages"]) == ["index", "evaluate"]
    assert not (run_dir / "model").exists() and not (run_dir / "checkpoints").exists()
    assert (run_dir / "metrics.json").is_file()


def test_bad_data_exits_with_file_and_line(tiny_beir: Path, tmp_path: Path, tiny_args):
    corpus = tiny_beir / "tiny" / "corpus.jsonl"
    lines = corpus.read_text().splitlines()
    lines[2] = lines[2][:-1]  # break the JSON of line 3
    corpus.write_text("\n".join(lines) + "\n")
    run_dir = tmp_path / "bad"
    result = run_rlab(tiny_args, run_dir, tiny_beir, timeout=300)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("rlab:")]
    assert len(errors) == 1 and f"{corpus}:3: malformed JSON" in errors[0], result.stderr
    assert not (run_dir / "metrics.json").exists()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed" and "malformed JSON" in record["error"] and record["stages"] == {}


def test_missing_dataset_says_where_to_put_it(tmp_path: Path, tiny_args):
    result = run_rlab(tiny_args, tmp_path / "run", tmp_path / "empty", timeout=300)
    assert result.returncode == 2
    assert "put the files at" in result.stderr and str(tmp_path / "empty" / "tiny") in result.stderr


def test_rlab_entry_point_composes_the_same_config():
    shown = subprocess.run(["rlab", "--cfg", "job", "model=tiny"], cwd=REPO, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout)["model"]["random_init"] is True


def test_ddp_on_two_cpu_processes_trains_once_and_evaluates_once(tiny_beir: Path, tmp_path: Path, tiny_args):
    run_dir = tmp_path / "ddp"
    result = run_rlab([*tiny_args, "trainer=ddp_sim"], run_dir, tiny_beir, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    # the trained ranks share the corpus encoding (one shard each), then rank 1 stops
    assert "encoded shard 0 of 2" in output and "encoded shard 1 of 2" in output
    assert "rank 1 of 2: done; rank 0 indexes and evaluates" in output
    assert (run_dir / "rlab.log").read_text().count("stage evaluate: done") == 1
    assert json.loads((run_dir / "metrics.json").read_text())["num_queries"] == 10
    assert (run_dir / "model" / "modules.json").is_file()


def test_saved_index_is_reused_and_a_mismatched_one_refused(tiny_beir: Path, tmp_path: Path, tiny_args):
    built = tmp_path / "built"
    result = run_rlab([*tiny_args, "stages=[index,evaluate]", "index=hnsw"], built, tiny_beir)
    assert result.returncode == 0, result.stderr[-3000:]

    reused = tmp_path / "reused"
    result = run_rlab([*tiny_args, "stages=[evaluate]", f"load_index={built / 'index'}"], reused, tiny_beir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(json.loads((reused / "run.json").read_text())["stages"]) == ["load_index", "evaluate"]
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (built, reused))
    assert second["metrics"] == first["metrics"] and second["index"]["kind"] == "hnsw"
    assert second["index"]["recall_vs_exact@10"] == first["index"]["recall_vs_exact@10"]

    other_model = tmp_path / "other"
    result = run_rlab([*tiny_args, "stages=[evaluate]", f"load_index={built / 'index'}", "seed=7"],
                      other_model, tiny_beir)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("rlab:")]
    assert len(errors) == 1 and "embeddings_key" in errors[0] and "not built from this model" in errors[0]
    assert not (other_model / "metrics.json").exists()


def test_load_index_and_an_index_stage_together_are_rejected(tmp_path: Path, tiny_args):
    result = run_rlab([*tiny_args, "load_index=/somewhere"], tmp_path / "run", timeout=300)
    assert result.returncode == 2 and "load_index" in result.stderr
