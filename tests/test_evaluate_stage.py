"""The evaluate stage: k per query, the run file, and BEIR's ignore_identical_ids."""

import json
from pathlib import Path

import numpy as np

from retrieval_lab.data.beir import BeirDataset, Document
from retrieval_lab.embedding_cache import CorpusEmbeddings
from retrieval_lab.encoding import encode_texts
from retrieval_lab.evaluation import read_run
from retrieval_lab.index import FlatIndex
from retrieval_lab.retrievers import DenseRetriever
from retrieval_lab.run_layout import RunLayout
from retrieval_lab.stages.evaluate import Evaluator
from tests.test_model import tiny


def _self_retrieval_dataset() -> BeirDataset:
    """Queries are documents too (as in ArguAna): each query's own id is in the corpus."""
    texts = [f"argument number {i} about topic {i % 3}" for i in range(12)]
    corpus = {f"a{i}": Document(title="", text=t) for i, t in enumerate(texts)}
    queries = {f"a{i}": texts[i] for i in range(4)}
    qrels = {"test": {f"a{i}": {f"a{i + 4}": 1} for i in range(4)}}
    return BeirDataset(name="selfret", path=Path("."), corpus=corpus, queries=queries, qrels=qrels)


def _evaluate(tmp_path: Path, ignore: bool) -> tuple[dict, dict]:
    dataset = _self_retrieval_dataset()
    model = tiny()
    corpus = CorpusEmbeddings(
        key="test", path=tmp_path, doc_ids=list(dataset.corpus), from_cache=False,
        embeddings=encode_texts(model, [d.text for d in dataset.corpus.values()], "doc", progress=False),
    )
    index = FlatIndex(model.dim)
    index.build(corpus.embeddings)
    out = tmp_path / ("ignore" if ignore else "keep")
    out.mkdir()
    evaluator = Evaluator(split="test", k=5, metrics=["ndcg@10", "recall@10"], ignore_identical_ids=ignore)
    metrics = evaluator(DenseRetriever(model, index, corpus, batch_size=4), dataset, out)
    return metrics, read_run(RunLayout(out).run_file)


def test_identical_ids_are_dropped_and_k_kept(tmp_path: Path):
    _, kept = _evaluate(tmp_path, ignore=False)
    assert all(q in docs for q, docs in kept.items())  # a query is its own nearest document
    metrics, dropped = _evaluate(tmp_path, ignore=True)
    assert all(q not in docs and len(docs) == 5 for q, docs in dropped.items())
    for q in dropped:
        expected = [d for d in sorted(kept[q], key=kept[q].get, reverse=True) if d != q]
        assert list(dropped[q])[:4] == expected[:4]
    written = json.loads(RunLayout(tmp_path / "ignore").metrics.read_text())
    assert written["metrics"] == metrics and written["num_queries"] == 4 and written["k"] == 5
    assert written["index"]["kind"] == "flat" and written["index"]["recall_vs_exact@10"] == 1.0
    assert written["index"]["bytes_per_doc"] >= 4 * 32  # flat float32 vectors of the tiny model
    assert np.isfinite(list(metrics.values())).all()
