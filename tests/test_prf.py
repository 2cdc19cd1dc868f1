"""Vector PRF: Rocchio's and Average's new query, the second search from the first's top
documents, its placement around a hybrid's fusion, and what the evaluator keeps of it."""

import json

import numpy as np
import pytest

from retrieval_lab.config import ConfigError
from retrieval_lab.data.beir import load_beir
from retrieval_lab.evaluation import read_run, trec_order
from retrieval_lab.index import FlatIndex
from retrieval_lab.retrievers import AveragePRF, CompositeRetrieval, Fusion, HybridRetriever, Rocchio
from retrieval_lab.run_layout import RunLayout
from retrieval_lab.search import search
from retrieval_lab.stages.evaluate import Evaluator
from tests.conftest import TINY, compose_config, run_rlab, write_tiny_beir
from tests.test_config import _validated
from tests.test_hybrid import _tiny_retrievers, assert_runs_close


def test_rocchio_moves_the_query_by_the_formula_and_renormalizes():
    q = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    feedback_sum = np.array([[0.0, 2.0, 2.0], [0.0, 0.0, 0.0]])  # two documents for the first query, none for the second
    counts = np.array([2, 0])
    prf = Rocchio(depth=2, alpha=0.8, beta=0.4)
    raw = prf.new_queries(q, feedback_sum, counts, normalize=False)
    assert np.allclose(raw[0], 0.8 * q[0] + 0.4 * np.array([0.0, 1.0, 1.0]))
    assert np.array_equal(raw[1], q[1])  # no feedback: the query as it was
    unit = prf.new_queries(q, feedback_sum, counts, normalize=True)
    assert np.allclose(unit[0], raw[0] / np.linalg.norm(raw[0])) and np.isclose(np.linalg.norm(unit[0]), 1.0)
    assert unit.dtype == np.float32


def test_average_is_the_mean_of_the_query_and_its_feedback_documents():
    q = np.array([[3.0, 0.0]], dtype=np.float32)
    docs = np.array([[0.0, 3.0], [3.0, 3.0]])
    new = AveragePRF(depth=2).new_queries(q, docs.sum(axis=0, keepdims=True), np.array([2]), normalize=False)
    assert np.allclose(new[0], (q[0] + docs[0] + docs[1]) / 3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_tiny_beir(root)
    dataset = load_beir(root, "tiny", ["test"], download=False)
    return dataset, *_tiny_retrievers(dataset)


def _by_hand(dense, queries: dict[str, str], feedback: dict, depth: int, alpha: float, beta: float, k: int,
             skip_own: bool = False) -> dict:
    """Rocchio written out query by query: the top ``depth`` of ``feedback``, their corpus rows, the
    formula, re-normalized, and a flat search of the corpus embeddings."""
    first = dense.retrieve(queries, k)
    rows = {d: i for i, d in enumerate(dense.corpus.doc_ids)}
    new = []
    for i, qid in enumerate(queries):
        top = [d for d, _ in trec_order(feedback[qid]) if not (skip_own and d == qid)][:depth]
        mean = np.mean([dense.corpus.embeddings[rows[d]] for d in top], axis=0)
        vector = alpha * first.query_embeddings[i].astype(np.float64) + beta * mean
        new.append(vector / np.linalg.norm(vector))
    exact = FlatIndex(dense.index.dim)
    exact.build(dense.corpus.embeddings)
    return search(exact, np.array(new, dtype=np.float32), list(queries), dense.corpus.doc_ids, k)


def _close(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for qid in want:
        assert list(got[qid]) == list(want[qid]), qid
        assert got[qid] == pytest.approx(want[qid], abs=1e-5), qid


def test_beta_0_gives_the_first_round_run_back_exactly(tiny):
    dataset, _, dense = tiny
    queries = dataset.split_queries("test")
    first = dense.retrieve(queries, 10).run
    dense.model.normalize = False  # q' = 1 * q + 0 * mean is q itself, bit for bit
    try:
        assert Rocchio(depth=3, alpha=1.0, beta=0.0).retrieve(dense, queries, 10).run == dense.retrieve(queries, 10).run
    finally:
        dense.model.normalize = True
    again = Rocchio(depth=3, alpha=1.0, beta=0.0).retrieve(dense, queries, 10)
    _close(again.run, first)  # re-normalizing a unit query moves no document
    assert again.parts["first_round"].run == first


def test_the_second_search_is_rocchio_over_the_first_searchs_top_documents(tiny):
    dataset, _, dense = tiny
    queries = dataset.split_queries("test")
    first = dense.retrieve(queries, 10).run
    result = Rocchio(depth=3, alpha=0.7, beta=0.6).retrieve(dense, queries, 10)
    assert isinstance(result, CompositeRetrieval) and result.record == {"prf": {"method": "rocchio", "depth": 3,
                                                                               "alpha": 0.7, "beta": 0.6}}
    _close(result.run, _by_hand(dense, queries, first, 3, 0.7, 0.6, 10))
    assert result.run != first
    skipped = Rocchio(depth=3, alpha=0.7, beta=0.6).retrieve(dense, queries, 10, ignore_identical_ids=True)
    _close(skipped.run, _by_hand(dense, queries, first, 3, 0.7, 0.6, 10, skip_own=True))


@pytest.mark.parametrize("interpolate", ["before", "after", "before_and_after"])
def test_prf_placement_around_the_hybrids_fusion(tiny, interpolate):
    """after: feedback from the dense run, then fused; before: feedback from the fused run, the
    dense second run is the result; before_and_after: feedback from the fused run, fused again."""
    dataset, bm25, dense = tiny
    queries = dataset.split_queries("test")
    fusion = Fusion("wsum", "min-max", {"bm25": 0.5, "dense": 0.5})
    hybrid = HybridRetriever({"bm25": bm25, "dense": dense}, fusion)
    runs = {"bm25": bm25.retrieve(queries, 10).run, "dense": dense.retrieve(queries, 10).run}
    fused = fusion.fuse(runs, 10)
    result = Rocchio(depth=2, alpha=1.0, beta=0.5, interpolate=interpolate).retrieve(hybrid, queries, 10)
    second = _by_hand(dense, queries, runs["dense"] if interpolate == "after" else fused, 2, 1.0, 0.5, 10)
    _close(result.parts["dense.prf"].run, second)
    prf_run = result.parts["dense.prf"].run
    if interpolate == "before":
        assert result.run == {q: dict(trec_order(docs)) for q, docs in prf_run.items()}
    else:
        assert result.run == fusion.fuse({"bm25": runs["bm25"], "dense": prf_run}, 10)
    assert set(result.parts) == {"bm25", "dense", "fused", "dense.prf"} and result.parts["fused"].run == fused
    assert result.record["prf"]["interpolate"] == interpolate and result.record["prf"]["components"] == ["dense"]


def test_the_evaluator_keeps_the_first_round_beside_the_prf_run(tiny, tmp_path):
    dataset, bm25, dense = tiny
    metrics = Evaluator(k=10, metrics=["ndcg@10"], prf=AveragePRF(depth=2))(dense, dataset, tmp_path)
    layout = RunLayout(tmp_path)
    written = json.loads(layout.metrics.read_text())
    assert written["metrics"] == metrics and written["prf"] == {"method": "average", "depth": 2}
    assert read_run(layout.part_run_file("first_round")) == dense.retrieve(dataset.split_queries("test"), 10).run
    assert set(written["parts"]) == {"first_round"}
    with pytest.raises(ValueError, match="evaluator.prf: .* the bm25 index has none"):
        Evaluator(k=10, prf=AveragePRF())(bm25, dataset, tmp_path)


def test_prf_configs_compose_validate_and_name_a_bad_key():
    cfg = compose_config(["evaluator/prf=rocchio", "evaluator.prf.depth=5"])
    assert cfg.evaluator.prf.depth == 5 and cfg.evaluator.prf.beta == 0.5
    assert compose_config([]).evaluator.prf is None
    _validated(["index=hybrid", "evaluator/prf=average"])
    for override, key in [("evaluator.prf.depth=0", "evaluator.prf.depth"),
                          ("evaluator.prf.interpolate=middle", "evaluator.prf.interpolate"),
                          ("+evaluator.prf.gamma=1", "evaluator.prf.gamma")]:
        with pytest.raises(ConfigError) as info:
            _validated(["evaluator/prf=rocchio", override])
        assert info.value.key == key


def test_rlab_hybrid_with_rocchio_prf_writes_every_round(tmp_path):
    root = tmp_path / "data"
    write_tiny_beir(root)
    run_dir = tmp_path / "runs" / "prf"
    args = [*TINY, "index=hybrid", "evaluator/prf=rocchio", "evaluator.prf.interpolate=before_and_after",
            "stages=[index,evaluate]"]
    result = run_rlab(args, run_dir, root, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    layout = RunLayout(run_dir)
    metrics = json.loads(layout.metrics.read_text())
    assert set(metrics["parts"]) == {"bm25", "dense", "fused", "dense.prf"}
    assert metrics["prf"] == {"method": "rocchio", "depth": 3, "alpha": 1.0, "beta": 0.5,
                              "interpolate": "before_and_after", "components": ["dense"]}
    assert metrics["fusion"]["method"] == "rrf"
    runs = {name: read_run(layout.part_run_file(name)) for name in ("bm25", "dense.prf")}
    assert_runs_close(read_run(layout.run_file),
                      Fusion("rrf", "min-max").fuse({"bm25": runs["bm25"], "dense": runs["dense.prf"]}, 20))
