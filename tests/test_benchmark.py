"""benchmark.json's mean (a group of datasets counted once, as BEIR counts CQADupStack), each
dataset's config as `data=<name>` composes it, and bad benchmark configs refused before any work."""

import pytest
from omegaconf import open_dict

from retrieval_lab.benchmark import Benchmark, summarize
from retrieval_lab.config.validation import ConfigError, validate_config
from tests.conftest import compose_config


def _entry(ndcg: float) -> dict:
    return {"dir": "x", "split": "test", "num_queries": 1, "metrics": {"ndcg@10": ndcg, "recall@100": 1.0}}


def test_the_mean_counts_a_group_once_as_the_mean_of_its_members():
    results = {"scifact": _entry(0.6), "cqadupstack/android": _entry(0.2), "cqadupstack/gis": _entry(0.4),
               "arguana": _entry(0.5)}
    summary = summarize(results, {"fiqa": "not found"})
    assert summary["mean_over"] == ["scifact", "cqadupstack", "arguana"]
    assert summary["groups"]["cqadupstack"] == {"datasets": ["cqadupstack/android", "cqadupstack/gis"],
                                                "metrics": {"ndcg@10": pytest.approx(0.3), "recall@100": 1.0}}
    assert summary["mean"]["ndcg@10"] == pytest.approx((0.6 + 0.3 + 0.5) / 3)
    assert summary["datasets"]["cqadupstack/gis"]["group"] == "cqadupstack"
    assert summary["skipped"] == {"fiqa": "not found"}


def test_each_dataset_gets_its_own_config_and_the_runs_root():
    cfg = compose_config(["benchmark=beir_small", "stages=[index,evaluate]", "data.root=/some/root",
                          "data.strict=true"])
    benchmark = Benchmark(**{k: v for k, v in cfg.benchmark.items() if k != "_target_"})
    arguana = benchmark.dataset_config("arguana", cfg)
    assert arguana.data.name == "arguana" and arguana.data.ignore_identical_ids
    assert arguana.data.root == "/some/root" and arguana.data.strict
    assert arguana.evaluator.ignore_identical_ids and arguana.evaluator.mteb.task_name == "ArguAna"
    forum = benchmark.dataset_config("cqadupstack/gis", cfg)
    assert forum.evaluator.mteb.task_name == "CQADupstackGisRetrieval" and not forum.evaluator.ignore_identical_ids


@pytest.mark.parametrize("override, message", [
    ("benchmark.datasets=[scifact,nope]", "benchmark.datasets: no dataset config conf/data/nope.yaml; known: arguana,"),
    ("benchmark.datasets=[scifact,scifact]", "benchmark.datasets: a dataset is listed twice"),
    ("benchmark.datasets=[]", "benchmark.datasets: no dataset given"),
])
def test_a_bad_dataset_list_is_a_config_error(override, message):
    cfg = compose_config(["benchmark=beir_small", override, "stages=[index,evaluate]"])
    with open_dict(cfg):
        cfg.paths.output_dir = "/tmp/unused"  # ${hydra:...} only resolves inside a Hydra run
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert str(err.value).startswith(message), err.value
