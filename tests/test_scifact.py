"""Acceptance on the real SciFact: zero-shot reproduces MTEB, the default run beats it.

Each run goes through the CLI exactly as a user types it; the two runs are shared by the tests
below (module-scoped), so the suite encodes SciFact's corpus twice in all.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from sentence_transformers import SentenceTransformer

from retrieval_lab.data.beir import document_text, load_beir
from retrieval_lab.evaluation import read_run
from tests.conftest import run_rlab

pytestmark = pytest.mark.scifact


def _metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


@pytest.fixture(scope="module")
def zero_shot(scifact_root, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("scifact") / "zero_shot"
    result = run_rlab(["stages=[index,evaluate]"], run_dir, scifact_root)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def default_run(scifact_root, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("scifact") / "default"
    result = run_rlab([], run_dir, scifact_root)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_zero_shot_minilm_reproduces_the_mteb_figure(zero_shot):
    metrics = _metrics(zero_shot)
    assert metrics["ndcg@10"] == pytest.approx(0.6451, abs=0.0005)
    assert metrics["recall@100"] == pytest.approx(0.925, abs=0.001)


def test_default_fine_tune_beats_zero_shot(default_run):
    stages = json.loads((default_run / "stages.json").read_text())
    assert list(stages) == ["train", "index", "evaluate"]
    assert _metrics(default_run)["ndcg@10"] >= 0.665


@pytest.mark.parametrize("which", ["zero_shot", "default_run"])
def test_metrics_agree_with_pytrec_eval_on_the_run_file(which, request, scifact_root):
    run_dir = request.getfixturevalue(which)
    qrels = load_beir(scifact_root, "scifact", ["test"], download=False).qrels["test"]
    run = read_run(run_dir / "run.trec")
    assert all(len(docs) == 1000 for docs in run.values())
    measures = {"ndcg_cut.10", "recall.10", "recall.100", "map_cut.100"}
    trec = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    top10 = {q: dict(sorted(d.items(), key=lambda x: (x[1], x[0]), reverse=True)[:10]) for q, d in run.items()}
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    expected = {
        "ndcg@10": np.mean([v["ndcg_cut_10"] for v in trec.values()]),
        "recall@10": np.mean([v["recall_10"] for v in trec.values()]),
        "recall@100": np.mean([v["recall_100"] for v in trec.values()]),
        "map@100": np.mean([v["map_cut_100"] for v in trec.values()]),
        "mrr@10": np.mean([v["recip_rank"] for v in mrr.values()]),
    }
    assert len(trec) == 300
    for name, value in expected.items():
        assert _metrics(run_dir)[name] == pytest.approx(value, abs=1e-6), name


def test_exported_model_gives_the_framework_embeddings(default_run, scifact_root):
    dataset = load_beir(scifact_root, "scifact", ["test"], download=False)
    doc_ids = (default_run / "index" / "doc_ids.txt").read_text().split()
    sample = list(range(0, len(doc_ids), 50))  # 104 documents, every length
    texts = [document_text(dataset.corpus[doc_ids[i]]) for i in sample]
    st = SentenceTransformer(str(default_run / "model"), device="cpu")
    exported = st.encode(texts, prompt_name="document", batch_size=32)
    cached = Path(json.loads((default_run / "index" / "index.json").read_text())["embeddings_path"])
    indexed = np.load(cached / "embeddings.npy", mmap_mode="r")[sample]
    assert np.abs(exported - indexed).max() < 1e-5
