"""Hybrid retrieval: ranx's fusion of the components' runs, the run files and metrics of each
component beside the fused one, the saved hybrid index loaded back, and its config errors."""

import json
from pathlib import Path

import pytest
import ranx

from retrieval_lab.config import ConfigError
from retrieval_lab.data.beir import document_text, load_beir
from retrieval_lab.embedding_cache import CorpusEmbeddings
from retrieval_lab.encoding import encode_texts
from retrieval_lab.evaluation import evaluate, read_run
from retrieval_lab.index import FlatIndex
from retrieval_lab.lexical import BM25Index
from retrieval_lab.retrievers import DenseRetriever, Fusion, HybridIndex, HybridRetriever
from retrieval_lab.run_layout import RECORD_FILE, SWEEP_SUMMARY_FILE, RunLayout
from retrieval_lab.stages.evaluate import Evaluator
from retrieval_lab.training.training_set import judged_pairs
from tests.conftest import TINY, compose_config, run_rlab, write_tiny_beir
from tests.test_config import _validated
from tests.test_model import tiny

# No tied scores inside a run: every method then ranks without an arbitrary choice.
LEXICAL = {"q1": {"a": 9.0, "b": 7.0, "c": 4.0}, "q2": {"c": 3.0, "d": 1.0}}
DENSE = {"q1": {"c": 0.9, "a": 0.8, "e": 0.1}, "q2": {"d": 0.7, "b": 0.6, "e": 0.2}}


def assert_runs_close(got: dict, want: dict) -> None:
    """The same queries and documents, scores within 1e-12."""
    assert list(got) == list(want)
    for query, docs in want.items():
        assert sorted(got[query]) == sorted(docs), query
        assert got[query] == pytest.approx(docs, abs=1e-12), query


def test_rrf_is_ranx_fuse_and_the_sum_of_reciprocal_ranks_with_k_60():
    fused = Fusion("rrf", "min-max").fuse({"bm25": LEXICAL, "dense": DENSE}, k=10)
    by_ranx = ranx.fuse([ranx.Run(LEXICAL), ranx.Run(DENSE)], norm="min-max", method="rrf").to_dict()
    assert_runs_close(fused, by_ranx)
    # ranks: bm25 q1 a b c, q2 c d; dense q1 c a e, q2 d b e
    by_hand = {"q1": {"a": 1 / 61 + 1 / 62, "c": 1 / 63 + 1 / 61, "b": 1 / 62, "e": 1 / 63},
               "q2": {"c": 1 / 61, "d": 1 / 62 + 1 / 61, "b": 1 / 62, "e": 1 / 63}}
    assert_runs_close(fused, by_hand)
    assert list(fused["q1"]) == ["a", "c", "b", "e"] and list(fused["q2"]) == ["d", "c", "b", "e"]  # best first
    assert Fusion("rrf", None, params={"k": 1}).fuse({"x": LEXICAL, "y": DENSE}, 10)["q1"]["a"] == 1 / 2 + 1 / 3


def test_rank_fusion_ranks_tied_scores_as_trec_eval_whatever_the_input_order():
    tied = {"q1": {"a": 1.0, "b": 1.0, "c": 0.5}}
    for first in (tied, {"q1": dict(reversed(tied["q1"].items()))}):
        fused = Fusion("rrf", "min-max").fuse({"x": first, "y": {"q1": {"c": 2.0}}}, k=10)
        assert fused["q1"] == pytest.approx({"c": 1 / 63 + 1 / 61, "b": 1 / 61, "a": 1 / 62}, abs=1e-15)


def test_weighted_sum_is_ranx_fuse_over_min_max_scores_with_alpha_and_1_minus_alpha():
    index = HybridIndex({"bm25": None, "dense": None}, fusion="wsum", norm="min-max", alpha=0.3)
    assert index.fusion.weights == {"bm25": 0.3, "dense": 0.7}
    fused = index.fusion.fuse({"bm25": LEXICAL, "dense": DENSE}, k=10)
    by_ranx = ranx.fuse([ranx.Run(LEXICAL), ranx.Run(DENSE)], norm="min-max", method="wsum",
                        params={"weights": [0.3, 0.7]}).to_dict()
    assert_runs_close(fused, by_ranx)
    # min-max per query: q1 bm25 a 1, b 0.6, c 0; dense c 1, a 0.875, e 0
    assert fused["q1"] == pytest.approx({"a": 0.3 + 0.7 * 0.875, "b": 0.3 * 0.6, "c": 0.7, "e": 0.0})
    assert list(fused["q1"]) == ["a", "c", "b", "e"]


def test_fusion_keeps_every_query_and_the_top_k_and_leaves_out_an_empty_run():
    empty = {"q1": {}, "q2": {}}
    assert Fusion("rrf", "min-max").fuse({"a": LEXICAL, "b": empty}, k=2) == {"q1": {"a": 9.0, "b": 7.0},
                                                                              "q2": {"c": 3.0, "d": 1.0}}
    fused = Fusion("sum", "min-max").fuse({"a": LEXICAL, "b": {"q1": DENSE["q1"], "q2": {}}}, k=2)
    assert list(fused) == ["q1", "q2"] and all(len(docs) == 2 for docs in fused.values())
    assert Fusion("rrf", None).fuse({"a": empty, "b": empty}, k=5) == empty


def _tiny_retrievers(dataset) -> tuple[BM25Index, DenseRetriever]:
    doc_ids = list(dataset.corpus)
    texts = [document_text(dataset.corpus[d]) for d in doc_ids]
    bm25 = BM25Index()
    bm25.build(doc_ids, texts)
    model = tiny()
    corpus = CorpusEmbeddings("test", Path("."), encode_texts(model, texts, "doc", progress=False), doc_ids, False)
    flat = FlatIndex(model.dim)
    flat.build(corpus.embeddings)
    return bm25, DenseRetriever(model, flat, corpus, batch_size=8)


def test_the_evaluator_writes_and_scores_the_fused_run_and_each_component_beside_it(tmp_path):
    root = tmp_path / "data"
    write_tiny_beir(root)
    dataset = load_beir(root, "tiny", ["test"], download=False)
    bm25, dense = _tiny_retrievers(dataset)
    fusion = Fusion("wsum", "min-max", {"bm25": 0.4, "dense": 0.6})
    hybrid = HybridRetriever({"bm25": bm25, "dense": dense}, fusion)
    metrics = Evaluator(k=10, metrics=["ndcg@10", "recall@10"])(hybrid, dataset, tmp_path)
    layout, qrels = RunLayout(tmp_path), dataset.qrels["test"]
    queries = dataset.split_queries("test")
    written = json.loads(layout.metrics.read_text())
    assert written["metrics"] == metrics
    assert written["fusion"] == {"components": {"bm25": "bm25", "dense": "flat"}, "method": "wsum", "norm": "min-max",
                                 "weights": {"bm25": 0.4, "dense": 0.6}, "params": {}}
    runs = {name: component.retrieve(queries, 10).run for name, component in hybrid.components.items()}
    for name, run in runs.items():
        assert read_run(layout.part_run_file(name)) == run
        assert written["parts"][name]["metrics"] == evaluate(qrels, run, ["ndcg@10", "recall@10"])[0]
    assert read_run(layout.run_file) == fusion.fuse(runs, 10)
    assert set(written["index"]) == {"bm25", "dense"} and written["index"]["dense"]["kind"] == "flat"
    assert "latency_p50_ms" not in json.dumps(written["index"])  # timings go to run.json


def test_hybrid_config_composes_bm25_and_a_flat_index_and_validates():
    cfg = compose_config(["index=hybrid"])
    assert list(cfg.index.components) == ["bm25", "dense"]
    assert cfg.index.components.bm25.k1 == 1.5 and cfg.index.components.dense._target_.endswith("FlatIndex")
    assert cfg.index.fusion == "rrf" and cfg.model is not None
    _validated(["index=hybrid"])
    assert compose_config(["index=hybrid", "index@index.components.dense=hnsw"]).index.components.dense.M == 32


@pytest.mark.parametrize(("overrides", "key", "says"), [
    (["index.fusion=rfr"], "index.fusion", "rrf"),
    (["index.norm=minmax"], "index.norm", "min-max"),
    (["index.alpha=0.3"], "index.alpha", "takes no weights"),
    (["index.fusion=wsum", "index.alpha=1.5"], "index.alpha", "within [0, 1]"),
    (["index.fusion=wsum", "index.weights={bm25: 0.5, sparse: 0.5}"], "index.weights", "one weight per component"),
    (["index.params={kk: 10}"], "index.params", "not taken by ranx's rrf"),
    (["~index.components.dense"], "index.components", "two or more"),
    (["+index.components.fused._target_=retrieval_lab.index.FlatIndex", "+index.components.fused._partial_=true"],
     "index.components", "'fused'"),
])
def test_a_bad_fusion_setting_is_a_config_error_naming_its_key(overrides, key, says):
    with pytest.raises(ConfigError) as info:
        _validated(["index=hybrid", "stages=[index,evaluate]", *overrides])
    assert info.value.key == key and says in str(info.value) and "\n" not in str(info.value)


@pytest.fixture(scope="module")
def hybrid_run(tmp_path_factory) -> tuple[Path, Path]:
    """`rlab index=hybrid index.fusion=wsum index.alpha=0.3 stages=[index,evaluate]` on the tiny dataset."""
    root = tmp_path_factory.mktemp("data")
    write_tiny_beir(root)
    run_dir = tmp_path_factory.mktemp("runs") / "hybrid"
    args = [*TINY, "index=hybrid", "index.fusion=wsum", "index.alpha=0.3", "stages=[index,evaluate]"]
    result = run_rlab(args, run_dir, root, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, root


def test_rlab_index_hybrid_writes_the_fused_run_the_components_and_loads_back(hybrid_run):
    run_dir, root = hybrid_run
    layout = RunLayout(run_dir)
    for path in [layout.run_file, layout.part_run_file("bm25"), layout.part_run_file("dense"),
                 layout.index_info, layout.index_dir / "bm25" / "index.json", layout.index_dir / "dense" / "index.json"]:
        assert path.is_file(), path
    info = json.loads(layout.index_info.read_text())
    assert info["kind"] == "hybrid" and info["components"] == {"bm25": "bm25", "dense": "flat"}
    assert info["fusion"]["weights"] == {"bm25": 0.3, "dense": 0.7}
    metrics = json.loads(layout.metrics.read_text())
    assert metrics["fusion"]["method"] == "wsum" and set(metrics["parts"]) == {"bm25", "dense"}
    assert json.loads(layout.record.read_text())["retrieval"]["fusion"] == metrics["fusion"]
    qrels = load_beir(root, "tiny", ["test"], download=False).qrels["test"]
    for name in ("bm25", "dense"):
        part = evaluate(qrels, read_run(layout.part_run_file(name)), list(metrics["metrics"]))[0]
        assert metrics["parts"][name]["metrics"] == pytest.approx(part, abs=1e-12)
    runs = {name: read_run(layout.part_run_file(name)) for name in ("bm25", "dense")}
    assert_runs_close(read_run(layout.run_file), Fusion("wsum", "min-max", {"bm25": 0.3, "dense": 0.7}).fuse(runs, 20))


def test_a_saved_hybrid_is_loaded_back_and_fused_with_other_weights(hybrid_run):
    """load_index gives each component back (the same runs), fused as the run's config says."""
    run_dir, root = hybrid_run
    args = [*TINY, "index=hybrid", "index.fusion=wsum", "index.alpha=0.8", "stages=[evaluate]",
            f"load_index={run_dir / 'index'}"]
    again = run_rlab(args, run_dir.parent / "again", root, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    layout, first = RunLayout(run_dir.parent / "again"), RunLayout(run_dir)
    runs = {name: read_run(layout.part_run_file(name)) for name in ("bm25", "dense")}
    assert all(run == read_run(first.part_run_file(name)) for name, run in runs.items())
    assert_runs_close(read_run(layout.run_file), Fusion("wsum", "min-max", {"bm25": 0.8, "dense": 0.2}).fuse(runs, 20))
    assert json.loads(layout.metrics.read_text())["fusion"]["weights"] == {"bm25": 0.8, "dense": pytest.approx(0.2)}
    other = run_rlab([*args, "~index.components.bm25", "+index.components.sparse._target_=retrieval_lab.lexical.BM25Index"],
                     run_dir.parent / "other", root, timeout=600)
    assert other.returncode != 0 and "components ['bm25', 'dense'], expected ['dense', 'sparse']" in other.stderr


def test_a_sweep_over_alpha_scores_each_weight_on_the_held_out_train_queries(tmp_path):
    """conf/index/hybrid.yaml's way to choose alpha: each job evaluated on the val split, the train
    queries that training with the same data.val_queries and seed holds out."""
    root = tmp_path / "data"
    write_tiny_beir(root)
    sweep_dir = tmp_path / "sweep"
    args = [*TINY, "index=hybrid", "index.fusion=wsum", "index.alpha=0.2,0.9", "stages=[index,evaluate]",
            "data.val_queries=6", "evaluator.split=val"]
    result = run_rlab(args, sweep_dir, root, timeout=900, multirun=True)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((sweep_dir / SWEEP_SUMMARY_FILE).read_text())
    assert [job["status"] for job in summary["jobs"]] == ["done", "done"]
    dataset = load_beir(root, "tiny", ["train"], download=False)
    held_out = judged_pairs(dataset, "train", "{title} {text}", val_queries=6, seed=42).held_out
    for num, alpha in enumerate((0.2, 0.9)):
        metrics = json.loads(RunLayout(sweep_dir / str(num)).metrics.read_text())
        assert metrics["split"] == "val" and metrics["num_queries"] == 6
        assert set(read_run(RunLayout(sweep_dir / str(num)).run_file)) == set(held_out.queries)
        assert metrics["fusion"]["weights"]["bm25"] == alpha
        assert summary["jobs"][num]["ndcg@10"] == metrics["metrics"]["ndcg@10"]
    record = json.loads((sweep_dir / "0" / RECORD_FILE).read_text())
    assert "qrels/train.tsv" in record["data"]["sha256"] and "val" in record["data"]["quirks"]
