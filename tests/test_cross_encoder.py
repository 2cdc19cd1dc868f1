"""The cross-encoder: trained from the config, exported, and re-ranking a first stage's top k."""

import json
from pathlib import Path

import torch

from retrieval_lab.data.beir import document_text, load_beir
from retrieval_lab.evaluation import read_run, trec_order
from retrieval_lab.evaluation.rerank import rerank
from tests.conftest import run_rlab
from tests.test_teachers import tiny_cross_encoder

CROSS = ["experiment=scifact_cross_encoder", "model=tiny_cross_encoder", "miner.num_negatives=3",
         "data.batch_size=4"]


def test_rerank_reorders_the_top_and_keeps_the_tail_below(tiny_beir: Path):
    dataset = load_beir(tiny_beir, "tiny", ["test"], download=False)
    queries = dataset.split_queries("test")
    run = {q: {f"d{i}": 100.0 - i for i in range(12)} for q in queries}
    model = tiny_cross_encoder()
    reranked, _ = rerank(run, dataset, queries, model, depth=5, doc_template="{title} {text}")
    for q in queries:
        order = [d for d, _ in trec_order(reranked[q])]
        top = [f"d{i}" for i in range(5)]
        scores = model.predict([queries[q]] * 5, [document_text(dataset.corpus[d], "{title} {text}") for d in top])
        assert order[:5] == [top[i] for i in torch.argsort(scores, descending=True, stable=True).tolist()]
        assert order[5:] == [f"d{i}" for i in range(5, 12)]


def test_cross_encoder_trains_exports_and_reranks(tmp_path: Path, tiny_beir: Path, tiny_args):
    trained = run_rlab([*tiny_args, *CROSS], tmp_path / "ce", tiny_beir)
    assert trained.returncode == 0, trained.stderr[-3000:]
    record = json.loads((tmp_path / "ce" / "run.json").read_text())
    assert list(record["stages"]) == ["mine", "train"] and record["status"] == "done"
    export = tmp_path / "ce" / "model"
    assert (export / "config.json").is_file() and (export / "tokenizer.json").is_file()

    ranked = run_rlab([*tiny_args, "stages=[index,evaluate]", f"evaluator.rerank={export}", "evaluator.rerank_depth=5"],
                      tmp_path / "rr", tiny_beir)
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    metrics = json.loads((tmp_path / "rr" / "metrics.json").read_text())
    assert metrics["rerank"]["depth"] == 5 and set(metrics["first_stage"]["metrics"]) == set(metrics["metrics"])
    first, final = read_run(tmp_path / "rr" / "run_first_stage.trec"), read_run(tmp_path / "rr" / "run.trec")
    for q in first:
        head = [d for d, _ in trec_order(first[q])]
        assert sorted(d for d, _ in trec_order(final[q])[:5]) == sorted(head[:5])
        assert [d for d, _ in trec_order(final[q])[5:]] == head[5:]


def test_a_cross_encoder_cannot_index(tmp_path: Path, tiny_beir: Path, tiny_args):
    result = run_rlab([*tiny_args, *CROSS, "stages=[train,index,evaluate]"], tmp_path / "run", tiny_beir)
    assert result.returncode == 2 and "cannot index a corpus" in result.stderr
