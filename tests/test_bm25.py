"""BM25 (bm25s): ranking, scoring, save/load, and `rlab index=bm25` through the whole pipeline."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from retrieval_lab.config import ConfigError
from retrieval_lab.data.beir import BeirDataset, Document, document_text, load_beir
from retrieval_lab.evaluation import evaluate, read_run
from retrieval_lab.index.base import IndexMismatchError
from retrieval_lab.lexical import Analyzer, BM25Index, corpus_sha256
from retrieval_lab.stages.evaluate import Evaluator
from tests.conftest import compose_config, run_rlab, write_tiny_beir
from tests.test_config import _validated

DOCS = {
    "heart": "Cardiac arrest: the heart stops beating and blood flow to the brain ends.",
    "sleep": "Sleep deprivation impairs memory consolidation in adolescents.",
    "vaccine": "Measles vaccines induce durable immunity in children.",
    "insulin": "Insulin resistance precedes type 2 diabetes by many years.",
    "tumor": "Tumor suppressor genes are silenced by promoter methylation in cancers.",
}
TINY_BM25 = ["index=bm25", "stages=[index,evaluate]", "data.name=tiny", "data.download=false",
             "evaluator.k=20"]


@pytest.fixture(scope="module")
def index() -> BM25Index:
    index = BM25Index()
    index.build(list(DOCS), list(DOCS.values()))
    return index


def test_the_document_sharing_the_query_words_ranks_first(index):
    queries = ["Does the heart stop in cardiac arrest?", "sleeping and memories",
               "vaccinated children immunity", "diabetic insulin resistance", "methylated tumors"]
    hits = index.search(queries, k=3)
    assert [next(iter(h)) for h in hits] == ["heart", "sleep", "vaccine", "insulin", "tumor"]
    for h in hits:
        scores = list(h.values())
        assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)


def test_stemming_and_stopwords_apply_alike_to_documents_and_queries():
    analyzer = Analyzer()
    assert analyzer.tokens(["The runners are running and it runs"]) == [["runner", "run", "run"]]
    assert Analyzer(stemmer=None, stopwords=None).tokens(["The runs"]) == [["the", "runs"]]


def test_documents_sharing_no_term_are_not_hits(index):
    assert index.search(["zebra", ""], k=5) == [{}, {}]
    assert len(index.search(["heart"], k=5)[0]) == 1  # only one document mentions it


def test_score_gives_the_scores_search_ranks_by(index):
    query = "cardiac arrest stops the brain"
    hits = index.search([query], k=5)[0]
    scores = index.score(query, list(DOCS))
    assert scores.dtype == np.float32
    for doc_id, score in zip(DOCS, scores):
        assert score == pytest.approx(hits.get(doc_id, 0.0), abs=1e-6)
    with pytest.raises(KeyError, match="nope"):
        index.score(query, ["heart", "nope"])


def test_save_load_roundtrip_searches_identically(index, tmp_path):
    index.save(tmp_path / "bm25", {"dataset": "toy"})
    info = json.loads((tmp_path / "bm25" / "index.json").read_text())
    assert info["kind"] == "bm25" and info["size"] == len(DOCS) and info["dataset"] == "toy"
    assert info["params"] == index.params and info["params"]["stemmer"] == "english"
    assert info["corpus_sha256"] == corpus_sha256(list(DOCS), list(DOCS.values()))
    loaded = BM25Index.load(tmp_path / "bm25", {"params": index.params,
                                                "corpus_sha256": info["corpus_sha256"]})
    queries = ["heart brain blood", "children vaccines", "genes in cancers", "zebra"]
    assert loaded.search(queries, 5) == index.search(queries, 5)
    assert np.array_equal(loaded.score(queries[0], list(DOCS)), index.score(queries[0], list(DOCS)))
    assert BM25Index.load(tmp_path / "bm25", mmap=True).search(queries, 5) == index.search(queries, 5)
    assert not list(tmp_path.rglob("*.tmp"))


def test_load_refuses_other_parameters_or_corpus(index, tmp_path):
    index.save(tmp_path / "bm25")
    with pytest.raises(IndexMismatchError, match=r"params\.k1=1\.5, expected 1\.2"):
        BM25Index.load(tmp_path / "bm25", {"params": {**index.params, "k1": 1.2}})
    with pytest.raises(IndexMismatchError, match="corpus_sha256"):
        BM25Index.load(tmp_path / "bm25", {"corpus_sha256": corpus_sha256(["x"], ["other"])})
    (tmp_path / "bm25" / "index.json").unlink()
    with pytest.raises(IndexMismatchError, match="index.json is missing"):
        BM25Index.load(tmp_path / "bm25")


def test_evaluator_searches_a_bm25_index_with_ignore_identical_ids(tmp_path):
    """Queries that are documents (ArguAna): the query's own id is dropped and k kept."""
    texts = [f"argument {i} about topic{i % 3} and claim{i}" for i in range(12)]
    corpus = {f"a{i}": Document(title="", text=t) for i, t in enumerate(texts)}
    qrels = {"test": {f"a{i}": {f"a{i + 3}": 1} for i in range(3)}}
    dataset = BeirDataset("selfret", Path("."), corpus, {f"a{i}": texts[i] for i in range(3)}, qrels)
    index = BM25Index()
    index.build(list(corpus), [document_text(d) for d in corpus.values()])
    evaluator = Evaluator(k=3, metrics=["ndcg@10", "recall@10"], ignore_identical_ids=True)
    metrics = evaluator(index, dataset, tmp_path)
    run = read_run(tmp_path / "run.trec")
    assert all(q not in docs and len(docs) == 3 for q, docs in run.items())
    assert metrics["recall@10"] == 1.0  # topic{i % 3} is shared with a{i + 3}
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["index"]["kind"] == "bm25" and written["index"]["size"] == 12
    assert "recall_vs_exact@10" not in written["index"]


def test_bm25_config_composes_to_the_bm25s_readme_defaults():
    cfg = compose_config(["index=bm25"])
    assert (cfg.index.k1, cfg.index.b, cfg.index.method) == (1.5, 0.75, "lucene")
    assert (cfg.index.stopwords, cfg.index.stemmer) == ("en", "english")


@pytest.fixture(scope="module")
def bm25_run(tmp_path_factory) -> tuple[Path, Path]:
    """`rlab index=bm25 stages=[index,evaluate]` on the tiny dataset: (run dir, data root)."""
    root = tmp_path_factory.mktemp("data")
    write_tiny_beir(root)
    run_dir = tmp_path_factory.mktemp("runs") / "bm25"
    result = run_rlab(TINY_BM25, run_dir, root, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, root


def test_rlab_index_bm25_indexes_and_evaluates_like_a_dense_run(bm25_run):
    run_dir, root = bm25_run
    assert "model: null" in (run_dir / "config.yaml").read_text()  # no model is built, none recorded
    assert "encode" not in json.loads((run_dir / "run.json").read_text())["precision"]
    for name in ["metrics.json", "metrics_per_query.tsv", "run.trec", "encoding.json",
                 "index/index.json", "index/doc_ids.txt"]:
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "model").exists() and not (run_dir.parent / "cache" / "embeddings").exists()
    assert json.loads((run_dir / "encoding.json").read_text())["kind"] == "bm25"
    assert json.loads((run_dir / "index" / "index.json").read_text())["size"] == 60
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_queries"] == 10 and metrics["index"]["kind"] == "bm25"
    qrels = load_beir(root, "tiny", ["test"], download=False).qrels["test"]
    run = read_run(run_dir / "run.trec")
    assert set(run) == set(qrels) and all(0 < len(docs) <= 20 for docs in run.values())
    overall, _ = evaluate(qrels, run, list(metrics["metrics"]))
    assert overall == pytest.approx(metrics["metrics"], abs=1e-12)
    assert overall["recall@10"] > 0.9  # each query is six words of its document


def test_a_saved_bm25_index_is_evaluated_again_and_refused_with_other_parameters(bm25_run, tmp_path):
    run_dir, root = bm25_run
    args = ["index=bm25", "stages=[evaluate]", f"load_index={run_dir / 'index'}", "data.name=tiny",
            "data.download=false", "evaluator.k=20"]
    again = run_rlab(args, tmp_path / "again", root, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "again" / "run.trec").read_text() == (run_dir / "run.trec").read_text()
    other = run_rlab([*args, "index.k1=1.2"], tmp_path / "other", root, timeout=600)
    errors = [line for line in other.stderr.splitlines() if line.startswith("rlab:")]
    assert other.returncode == 2 and len(errors) == 1 and "params.k1" in errors[0], other.stderr


def test_bm25_with_the_train_stage_is_a_config_error(tiny_beir, tmp_path):
    args = ["index=bm25", "stages=[train,index,evaluate]", "data.name=tiny", "data.download=false"]
    result = run_rlab(args, tmp_path / "run", tiny_beir, timeout=300)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("rlab:")]
    assert len(errors) == 1 and errors[0].startswith("rlab: config error: stages:"), result.stderr
    assert "model" in errors[0] and "stages=[index,evaluate]" in errors[0]
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert not (tmp_path / "run" / "run.json").exists() and not (tmp_path / "run" / "index").exists()


@pytest.mark.parametrize(("overrides", "error"), [
    (["model=none", "stages=[index,evaluate]"], "model: null, but the index (FlatIndex) searches a model's embeddings"),
    (["index=bm25", "model=minilm"], "index: BM25Index searches the texts themselves"),
])
def test_model_and_index_must_fit_together(overrides, error):
    with pytest.raises(ConfigError, match=re.escape(error)):
        _validated(overrides)


def test_index_bm25_runs_without_a_model():
    assert compose_config(["index=bm25"]).model is None
    _validated(["index=bm25", "stages=[index,evaluate]"])
