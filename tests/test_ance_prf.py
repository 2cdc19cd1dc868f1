"""ANCE-PRF: the expanded query text, the two searches against one index, the training queries
expanded as at evaluation, and a trained run end to end."""

import json
from pathlib import Path

import numpy as np
import pytest

from retrieval_lab.config import ConfigError
from retrieval_lab.data.beir import document_text, load_beir
from retrieval_lab.embedding_cache import corpus_embeddings
from retrieval_lab.encoding import encode_texts
from retrieval_lab.evaluation import read_run, trec_order
from retrieval_lab.index import FlatIndex
from retrieval_lab.lexical import BM25Index
from retrieval_lab.models.export import export_model
from retrieval_lab.retrievers import AncePRF, CompositeRetrieval, DenseRetriever
from retrieval_lab.run_layout import RunLayout
from retrieval_lab.search import search
from retrieval_lab.stages.evaluate import Evaluator
from retrieval_lab.training.training_set import judged_pairs
from retrieval_lab.training.training_set_file import load_training_set, save_training_set
from tests.conftest import TINY, compose_config, run_rlab, write_tiny_beir
from tests.test_config import _validated
from tests.test_model import tiny


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny dataset, a dense retriever over its corpus (embeddings through the cache), and
    its model, which is both the first round and the PRF query encoder here."""
    root = tmp_path_factory.mktemp("data")
    write_tiny_beir(root)
    dataset = load_beir(root, "tiny", ["train", "test"], download=False)
    model = tiny(query_max_length=256)
    cache = tmp_path_factory.mktemp("cache")
    corpus = corpus_embeddings(model, dataset, "{title} {text}", cache / "embeddings", progress=False)
    index = FlatIndex(model.dim)
    index.build(corpus.embeddings)
    return dataset, DenseRetriever(model, index, corpus, batch_size=8), cache


def test_the_query_is_followed_by_its_top_documents_joined_by_the_separator(setup):
    dataset, dense, _ = setup
    prf = AncePRF(dense.model, depth=2)
    feedback = {"q0": {"d3": 0.5, "d7": 0.9, "d1": 0.1}}
    docs = [document_text(dataset.corpus[d]) for d in ("d7", "d3")]
    assert prf.expanded({"q0": "gene cell"}, feedback, dataset)["q0"] == f"gene cell [SEP] {docs[0]} [SEP] {docs[1]}"
    assert prf.expanded({"q0": "gene cell", "q9": "none"}, {}, dataset) == {"q0": "gene cell", "q9": "none"}


def test_a_query_that_is_a_document_is_not_its_own_feedback(setup):
    dataset, dense, _ = setup
    prf = AncePRF(dense.model, depth=1)
    feedback = {"d5": {"d5": 1.0, "d2": 0.5}}
    assert prf.expanded({"d5": "x"}, feedback, dataset, ignore_identical_ids=True)["d5"] == (
        f"x [SEP] {document_text(dataset.corpus['d2'])}")
    assert prf.expanded({"d5": "x"}, feedback, dataset)["d5"] == f"x [SEP] {document_text(dataset.corpus['d5'])}"


def test_the_second_search_encodes_the_expanded_queries_against_the_same_index(setup):
    dataset, dense, _ = setup
    queries = dataset.split_queries("test")
    prf = AncePRF(dense.model, depth=3)
    result = prf.retrieve(dense, queries, 10, dataset=dataset)
    first = dense.retrieve(queries, 10).run
    assert isinstance(result, CompositeRetrieval) and result.parts["first_round"].run == first
    assert result.record == {"prf": {"method": "ance_prf", "depth": 3, "first_round": dense.model.name_or_path}}
    expanded = {q: " [SEP] ".join([text, *(document_text(dataset.corpus[d]) for d, _ in trec_order(first[q])[:3])])
                for q, text in queries.items()}
    by_hand = search(dense.index, encode_texts(dense.model, list(expanded.values()), "query", 8, False),
                     list(expanded), dense.corpus.doc_ids, 10)
    assert result.run == by_hand and result.run != first


def test_a_first_round_that_did_not_build_the_index_is_refused(setup):
    dataset, dense, _ = setup
    other = tiny(query_max_length=256, doc_max_length=32)  # same weights, other document length: other embeddings
    with pytest.raises(ValueError, match="evaluator.prf.first_round: .* are not the index's"):
        AncePRF(other).retrieve(dense, dataset.split_queries("test"), 10, dataset=dataset)
    bm25 = BM25Index()
    bm25.build(list(dataset.corpus), [document_text(doc) for doc in dataset.corpus.values()])
    with pytest.raises(ValueError, match="ANCE-PRF searches a dense index a second time, and the bm25 index"):
        AncePRF(dense.model).retrieve(bm25, dataset.split_queries("test"), 10, dataset=dataset)


def test_the_training_queries_are_expanded_by_the_first_search_over_the_whole_corpus(setup, tmp_path):
    dataset, dense, cache = setup
    training_set = judged_pairs(dataset, "train", "{title} {text}", val_queries=3, val_distractors=5, seed=0)
    prf = AncePRF(dense.model, depth=2)
    expanded = prf.expand_training_set(training_set, cache)
    originals = {**training_set.queries, **training_set.held_out.queries}
    first = dense.retrieve(originals, 2).run
    want = prf.expanded(originals, first, dataset)
    assert expanded.queries == {q: want[q] for q in training_set.queries}
    assert expanded.held_out.queries == {q: want[q] for q in training_set.held_out.queries}
    assert all(text.count(" [SEP] ") == 2 for text in expanded.queries.values())
    assert expanded.pairs == training_set.pairs and expanded.held_out.corpus == training_set.held_out.corpus
    save_training_set(expanded, tmp_path / "training_set")  # kept as trained on, held-out texts too
    loaded = load_training_set(tmp_path / "training_set", dataset)
    assert loaded.queries == expanded.queries and loaded.held_out == expanded.held_out


def test_the_ance_prf_config_composes_and_validates():
    cfg = compose_config(["experiment=scifact_ance_prf"])
    assert cfg.evaluator.prf._target_ == "retrieval_lab.retrievers.AncePRF"
    assert cfg.evaluator.prf.first_round.name_or_path == cfg.model.name_or_path and cfg.evaluator.prf.depth == 3
    assert cfg.model.doc.frozen and not cfg.model.shared and cfg.model.query_max_length == 512
    with pytest.raises(ConfigError) as info:
        _validated(["experiment=scifact_ance_prf", "evaluator.prf.depth=0"])
    assert info.value.key == "evaluator.prf.depth"
    with pytest.raises(ConfigError) as info:
        _validated(["experiment=scifact_ance_prf", "evaluator.prf.first_round.name_or_path=/no/such/model"])
    assert info.value.key == "evaluator.prf.first_round.name_or_path"
    with pytest.raises(ConfigError) as info:
        _validated(["experiment=scifact_ance_prf", "evaluator.prf.first_round=/no/such/model"])
    assert info.value.key == "evaluator.prf.first_round"


def test_rlab_trains_an_ance_prf_query_tower_and_searches_the_first_rounds_index(tmp_path):
    root = tmp_path / "data"
    write_tiny_beir(root)
    first_round = export_model(tiny(), tmp_path / "first_round")
    run_dir = tmp_path / "runs" / "ance_prf"
    args = [*TINY, "experiment=scifact_ance_prf", f"model.name_or_path={first_round}", "model.random_init=false",
            "model.query_max_length=256", "evaluator.prf.first_round.query_max_length=32", "miner.rank_range=[2,10]",
            "miner.relative_margin=null"]
    result = run_rlab(args, run_dir, root, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    layout = RunLayout(run_dir)
    record = json.loads(layout.record.read_text())
    assert list(record["stages"]) == ["mine", "expand_queries", "train", "index", "evaluate"]
    trained_on = json.loads((layout.training_set_dir / "training_set.json").read_text())["queries"]
    assert len(trained_on) == 30 and all(text.count(" [SEP] ") == 3 for text in trained_on.values())
    metrics = json.loads(layout.metrics.read_text())
    assert metrics["prf"] == {"method": "ance_prf", "depth": 3, "first_round": str(first_round)}
    assert set(metrics["parts"]) == {"first_round"}
    log = (run_dir / "rlab.log").read_text()
    assert "embedding cache hit" in log  # the index is the first round's: its document tower was frozen
    assert read_run(layout.run_file) != read_run(layout.part_run_file("first_round"))
    assert np.isfinite(metrics["metrics"]["ndcg@10"])
