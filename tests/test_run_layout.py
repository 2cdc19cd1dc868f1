"""The run directory's layout: the names on disk never change, and what the writers put there
through RunLayout the readers (rlab-compare, rlab-reproduce, the sweep summary) find."""

import json
from pathlib import Path

import yaml

from retrieval_lab.compare.runs import find_run_dirs, load_per_query, load_run
from retrieval_lab.data.beir import BeirDataset, Document
from retrieval_lab.evaluation import read_run
from retrieval_lab.index.saved import INFO_FILE
from retrieval_lab.lexical import BM25Index
from retrieval_lab.lexical.bm25 import DOC_IDS_FILE
from retrieval_lab.record import RunRecord
from retrieval_lab.reproduce.cli import run_precision
from retrieval_lab.run_layout import INDEX_DOC_IDS_FILE, INDEX_INFO_FILE, RECORD_FILE, TRACKED_FILES, RunLayout
from retrieval_lab.settings import RunSettings
from retrieval_lab.stages.evaluate import Evaluator
from retrieval_lab.stages.index import build_index
from retrieval_lab.sweep_summary import summarize

# Spelled out on purpose: run directories written by every earlier version use these names.
NAMES = {
    "record": "run.json",
    "config": "config.yaml",
    "encoding": "encoding.json",
    "metrics": "metrics.json",
    "metrics_per_query": "metrics_per_query.tsv",
    "run_file": "run.trec",
    "first_stage_run_file": "run_first_stage.trec",
    "model_dir": "model",
    "training_set_dir": "training_set",
    "index_dir": "index",
    "index_info": "index/index.json",
    "index_doc_ids": "index/doc_ids.txt",
    "checkpoints_dir": "checkpoints",
    "last_checkpoint": "checkpoints/last.ckpt",
    "log": "rlab.log",
    "overrides": ".hydra/overrides.yaml",
    "training_log": "csv/metrics.csv",
}


def test_the_names_on_disk_are_those_of_earlier_run_directories(tmp_path: Path):
    layout = RunLayout(tmp_path)
    assert {attr: getattr(layout, attr).relative_to(tmp_path).as_posix() for attr in NAMES} == NAMES
    assert RunLayout(str(tmp_path)).record == tmp_path / "run.json" and RECORD_FILE == "run.json"
    assert set(TRACKED_FILES) == {"run.trec", "metrics.json", "metrics_per_query.tsv", "run.json"}
    # The index directory's own files are named by the index classes too: the same names.
    assert (INDEX_INFO_FILE, INDEX_DOC_IDS_FILE) == (INFO_FILE, DOC_IDS_FILE)


def _dataset() -> BeirDataset:
    corpus = {f"d{i}": Document(title="", text=f"document {i} about {topic}")
              for i, topic in enumerate(["cats", "dogs", "fish", "birds", "cats and dogs", "trees"])}
    queries = {"q1": "cats", "q2": "dogs", "q3": "trees"}
    qrels = {"test": {"q1": {"d0": 1}, "q2": {"d1": 1, "d4": 1}, "q3": {"d5": 1}}}
    return BeirDataset(name="pets", path=Path("."), corpus=corpus, queries=queries, qrels=qrels)


def test_a_run_written_through_the_layout_is_read_back_by_every_reader(tmp_path: Path):
    sweep = tmp_path / "sweep"
    run_dir = sweep / "0"
    run_dir.mkdir(parents=True)
    layout = RunLayout(run_dir)
    overrides = ["index=bm25", "seed=3"]
    layout.config.write_text(yaml.safe_dump({"seed": 3, "index": {"k1": 1.5}}))
    record = RunRecord(run_dir, seed=3, overrides=overrides,
                       precision={"encode": {"precision": "32-true"}})
    dataset = _dataset()
    retriever = build_index(BM25Index(), None, dataset, RunSettings("{title} {text}", tmp_path / "cache"),
                            layout.index_dir)
    metrics = Evaluator(split="test", k=3, metrics=["ndcg@10", "recall@10"], latency_queries=2)(
        retriever, dataset, run_dir)
    record.update(metrics=metrics)
    record.finish()

    assert record.path == layout.record
    assert set(read_run(layout.run_file)) == {"q1", "q2", "q3"}
    assert layout.index_info.is_file() and layout.index_doc_ids.read_text().split() == list(dataset.corpus)
    recorded = json.loads(layout.record.read_text())
    assert recorded["files"] == ["config.yaml", "metrics.json", "metrics_per_query.tsv", "run.trec", "index"]

    # rlab-compare
    assert find_run_dirs([sweep]) == [run_dir.resolve()]
    run = load_run(run_dir)
    assert run.ok and run.seed == 3 and run.overrides == {"index": "bm25", "seed": "3"}
    assert run.metrics == metrics == json.loads(layout.metrics.read_text())["metrics"]
    assert run.config == {"seed": 3, "index": {"k1": 1.5}}
    per_query = load_per_query(run, "recall@10")
    assert sorted(per_query.index) == ["q1", "q2", "q3"] and per_query["q1"] == 1.0
    # rlab-reproduce
    assert run_precision(run_dir) == "32-true"
    # the sweep summary
    (job,) = summarize(sweep, "ndcg@10")["jobs"]
    assert job == {"dir": "0", "overrides": overrides, "status": "done", "error": None,
                   "ndcg@10": metrics["ndcg@10"]}
