import math
import os
import re

import numpy as np
import pytest
import pytrec_eval

from retrieval_lab.errors import DataError
from retrieval_lab.evaluation import DEFAULT_METRICS, evaluate, read_run, trec_order, write_run

# our metric name -> pytrec_eval measure (mrr@10 is recip_rank on the top-10 run, see below)
PYTREC = {"ndcg@10": "ndcg_cut_10", "recall@10": "recall_10", "recall@100": "recall_100", "map@100": "map_cut_100"}


def test_write_read_round_trip_preserves_order_ranks_and_scores(tmp_path):
    scores = np.array([0.1, 0.7, 0.7, 1 / 3, -2.5e-8, 0.7], dtype=np.float32)
    run = {
        "q1": {f"d{i}": float(s) for i, s in enumerate(scores)},
        "q2": {"x": float(np.float32(np.pi)), "y": 12345.678},
    }
    path = tmp_path / "run.trec"
    path.write_text("stale\n")  # overwritten atomically
    write_run(path, run, tag="exp1")

    assert os.listdir(tmp_path) == ["run.trec"]  # no temp file left behind
    back = read_run(path)
    assert back == run  # exact float equality: repr() round-trips every double
    assert np.array_equal(np.array([back["q1"][f"d{i}"] for i in range(6)], dtype=np.float32), scores)

    rows = [line.split() for line in path.read_text().splitlines()]
    q1 = [r for r in rows if r[0] == "q1"]
    # score descending, ties (0.7) by doc id descending, ranks 1..n
    assert [r[2] for r in q1] == ["d5", "d2", "d1", "d3", "d0", "d4"]
    assert [int(r[3]) for r in q1] == list(range(1, 7))
    assert all(r[1] == "Q0" and r[5] == "exp1" for r in rows)
    assert [d for d, _ in trec_order(run["q1"])] == [r[2] for r in q1]


@pytest.mark.parametrize(
    ("line", "why"),
    [("q1 Q0 d1 1 0.5", "expected 6 fields"), ("q1 Q0 d1 1 abc t", "bad rank"), ("q1 Q0 d0 2 0.1 t", "duplicate")],
)
def test_read_run_malformed_line_names_file_and_line(tmp_path, line, why):
    path = tmp_path / "bad.trec"
    path.write_text(f"q1 Q0 d0 1 0.9 t\n\n{line}\n")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:3: .*{why}"):
        read_run(path)


def test_write_run_rejects_whitespace_in_ids(tmp_path):
    with pytest.raises(ValueError):
        write_run(tmp_path / "r.trec", {"q 1": {"d": 1.0}})
    assert list(tmp_path.iterdir()) == []


def test_hand_computed_small_case():
    qrels = {
        "q1": {"d1": 2, "d2": 0, "d3": 1},
        "q2": {"d1": 1},
        "q3": {"d2": 1},  # nothing retrieved: zeros, still in the mean
        "q4": {"d1": 0},  # no relevant doc: zeros, in the mean, as trec_eval scores it
    }
    run = {
        "q1": {"d3": 0.9, "d2": 0.8, "d1": 0.7},
        "q2": {"d1": 0.5, "d2": 0.5, "d3": 0.1},  # tie: trec_eval ranks d2 before d1
        "q4": {"d1": 1.0},
        "q9": {"d1": 1.0},  # not in qrels: ignored
    }
    means, per_query = evaluate(qrels, run)
    assert set(per_query) == {"q1", "q2", "q3", "q4"}
    assert all(set(v) == set(DEFAULT_METRICS) for v in per_query.values())
    assert set(means) == set(DEFAULT_METRICS)

    # q1: ranking d3(1) d2(0) d1(2); ideal d1(2) d3(1)
    ndcg_q1 = (1 / math.log2(2) + 2 / math.log2(4)) / (2 / math.log2(2) + 1 / math.log2(3))
    expected = {
        "q1": {"ndcg@10": ndcg_q1, "mrr@10": 1.0, "recall@10": 1.0, "recall@100": 1.0, "map@100": (1 + 2 / 3) / 2},
        # q2: ranking d2 d1 d3, the relevant d1 at rank 2
        "q2": {"ndcg@10": 1 / math.log2(3), "mrr@10": 0.5, "recall@10": 1.0, "recall@100": 1.0, "map@100": 0.5},
        "q3": dict.fromkeys(DEFAULT_METRICS, 0.0),
        "q4": dict.fromkeys(DEFAULT_METRICS, 0.0),
    }
    for qid, values in expected.items():
        assert per_query[qid] == pytest.approx(values, abs=1e-12), qid
    for metric in DEFAULT_METRICS:
        assert means[metric] == pytest.approx(sum(v[metric] for v in expected.values()) / 4, abs=1e-12)


def test_ignore_identical_ids():
    qrels = {"a": {"b": 1}, "b": {"c": 1}}
    run = {"a": {"a": 0.9, "b": 0.8}, "b": {"a": 0.9, "c": 0.8}}
    _, kept = evaluate(qrels, run, ["mrr@10", "ndcg@10"])
    _, dropped = evaluate(qrels, run, ["mrr@10", "ndcg@10"], ignore_identical_ids=True)
    assert kept["a"] == pytest.approx({"mrr@10": 0.5, "ndcg@10": 1 / math.log2(3)})
    assert dropped["a"] == pytest.approx({"mrr@10": 1.0, "ndcg@10": 1.0})
    assert dropped["b"] == kept["b"]  # its run has no doc "b": unchanged
    assert run["a"] == {"a": 0.9, "b": 0.8}  # input not mutated


def _random_fixture(seed: int = 0):
    rng = np.random.default_rng(seed)
    docs = [f"doc{i}" for i in range(300)]
    qids = [f"q{i}" for i in range(50)]
    qrels = {}
    for i, qid in enumerate(qids):
        judged = rng.choice(300, size=rng.integers(1, 15), replace=False)
        grades = rng.integers(0, 3, size=len(judged))
        if i < 3:
            grades[:] = 0  # judged, but nothing relevant
        elif not grades.any():
            grades[0] = 2
        qrels[qid] = {docs[d]: int(g) for d, g in zip(judged, grades)}
    run = {}
    for i, qid in enumerate(qids[5:] + [f"extra{j}" for j in range(5)]):  # q0..q4 retrieve nothing
        depth = int(rng.choice([5, 60, 300]))
        chosen = rng.choice(300, size=depth, replace=False)
        scores = rng.standard_normal(depth).astype(np.float32)
        if i % 2:
            scores = np.round(scores, 1).astype(np.float32)  # many ties
        run[qid] = {docs[d]: float(s) for d, s in zip(chosen, scores)}
    return qrels, run


def test_matches_pytrec_eval_on_written_run_file(tmp_path):
    qrels, run = _random_fixture()
    path = tmp_path / "run.trec"
    write_run(path, run)
    run = read_run(path)

    means, ours = evaluate(qrels, run)

    query_set = set(qrels)  # with the 3 queries that have no relevant document: trec_eval scores them 0
    assert set(ours) == query_set and len(query_set) == 50
    assert sum(not any(g > 0 for g in docs.values()) for docs in qrels.values()) == 3
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10", "recall.100", "map_cut.100"})
    ref = evaluator.evaluate(run)
    top10 = {q: dict(trec_order(docs)[:10]) for q, docs in run.items()}
    ref_rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)

    # pytrec_eval leaves out queries absent from the run; they must be all zeros on our side.
    missing = query_set - set(ref)
    assert missing == {"q0", "q1", "q2", "q3", "q4"}
    assert all(v == 0.0 for q in missing for v in ours[q].values())
    assert any(ours[q]["mrr@10"] > 0 for q in query_set)

    for metric in DEFAULT_METRICS:
        expected = {
            q: 0.0 if q in missing else ref_rr[q]["recip_rank"] if metric == "mrr@10" else ref[q][PYTREC[metric]]
            for q in query_set
        }
        for q in query_set:
            assert ours[q][metric] == pytest.approx(expected[q], abs=1e-6), (q, metric)
        assert means[metric] == pytest.approx(sum(expected.values()) / len(query_set), abs=1e-6), metric


def test_every_named_metric_equals_trec_evals_measure():
    qrels = {"q1": {"d1": 2, "d2": 0, "d3": 1, "d9": 1}, "q2": {"d2": 1}}
    run = {"q1": {"d3": 0.9, "d2": 0.8, "d1": 0.7, "d4": 0.6}, "q2": {"d1": 0.5, "d2": 0.4}}
    names = {"ndcg": "ndcg", "map": "map", "mrr": "recip_rank", "r-precision": "Rprec", "precision@3": "P_3",
             "hit_rate@1": "success_1", "recall@3": "recall_3", "map@3": "map_cut_3", "ndcg@3": "ndcg_cut_3"}
    _, per_query = evaluate(qrels, run, list(names))
    measures = {"ndcg", "map", "recip_rank", "Rprec", "P.3", "success.1", "recall.3", "map_cut.3", "ndcg_cut.3"}
    expected = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    for qid in qrels:
        assert {m: per_query[qid][m] for m in names} == pytest.approx({m: expected[qid][t] for m, t in names.items()})
    # mrr@k: the reciprocal rank within the top k only (q2's relevant d2 is at rank 2)
    _, cut = evaluate(qrels, run, ["mrr@1", "mrr@2"])
    assert cut["q2"] == {"mrr@1": 0.0, "mrr@2": 0.5}


@pytest.mark.parametrize("metric", ["ndgc@10", "ndcg@0", "mrr@x", "r-precision@5", "NDCG@10"])
def test_an_unknown_metric_is_refused_naming_it(metric):
    with pytest.raises(ValueError, match=rf"^unknown metric {re.escape(repr(metric))}; known: ndcg@k"):
        evaluate({"q1": {"d1": 1}}, {"q1": {"d1": 1.0}}, ["ndcg@10", metric])


@pytest.mark.parametrize("override, key", [("evaluator.metrics=[ndcg@10,ndgc@10]", "evaluator.metrics"),
                                           ("callbacks.retrieval_validation.metrics=[recal@10]",
                                            "callbacks.retrieval_validation.metrics")])
def test_an_unknown_metric_in_the_config_is_a_config_error(override, key):
    from omegaconf import open_dict

    from retrieval_lab.config.validation import ConfigError, validate_config
    from tests.conftest import compose_config

    cfg = compose_config([override])
    with open_dict(cfg):
        cfg.paths.output_dir = "/tmp/unused"  # ${hydra:...} only resolves inside a Hydra run
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: unknown metric"):
        validate_config(cfg)
