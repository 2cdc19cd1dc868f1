"""The quirks of real BEIR data (data/quirks.py), each on a small BEIR-layout fixture: counted in
the run record, said once in the log, scored as trec_eval (pytrec_eval) scores the same qrels and
run, and a DataError naming the file and line with data.strict=true."""

import json
import logging
from pathlib import Path

import pytest
import pytrec_eval

from retrieval_lab.data.beir import load_beir
from retrieval_lab.errors import DataError
from retrieval_lab.evaluation import evaluate, read_run
from tests.conftest import run_rlab, write_tiny_beir

TREC_MEASURES = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "map@100": "map_cut_100",
                 "mrr@10": "recip_rank"}  # mrr@10 is checked on runs whose first hit is in the top 10 or absent

# q30..q39 are the test queries of write_tiny_beir; each case adds its quirk to the test qrels.
# (the qrels line, the counts it gives, the strict error)
QUIRKS = {
    "missing doc": ("q30\tgone-doc\t1\n", {"qrels_docs_not_in_corpus": 1},
                    "test.tsv:{line}: corpus id 'gone-doc' is not in corpus.jsonl"),
    "grade 0": ("q31\td5\t0\n", {"non_relevant_judgements": 1},
                "test.tsv:{line}: ('q31', 'd5') is judged non-relevant"),
    "no relevant doc": ("q0\td7\t0\n", {"queries_without_relevant": 1, "non_relevant_judgements": 1},
                        "test.tsv:{line}: query 'q0' has no relevant document"),
}


def _dataset(root: Path, extra_qrels: str = "", query_is_doc: bool = False) -> Path:
    path = write_tiny_beir(root)
    qrels = path / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text() + extra_qrels)
    if query_is_doc:  # a query whose id is a document's, judged against another document
        with (path / "queries.jsonl").open("a") as f:
            f.write(json.dumps({"_id": "d3", "text": "protein gene cell"}) + "\n")
        qrels.write_text(qrels.read_text() + "d3\td4\t1\n")
    return root


def _line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


@pytest.mark.parametrize("quirk", list(QUIRKS))
def test_each_quirk_is_counted_and_logged_once_and_refused_when_strict(tmp_path, quirk, caplog):
    extra, expected, message = QUIRKS[quirk]
    root = _dataset(tmp_path / "data", extra)
    qrels = root / "tiny" / "qrels" / "test.tsv"
    with caplog.at_level(logging.INFO, logger="retrieval_lab.data.quirks"):
        dataset = load_beir(root, "tiny", ["test"], download=False)
    counts = dataset.quirks["test"].counts()
    assert {k: v for k, v in counts.items() if v} == expected
    said = [r.getMessage() for r in caplog.records if r.name == "retrieval_lab.data.quirks"]
    assert len(said) == len(expected) and all(line.startswith(f"{qrels}: ") for line in said), said
    with pytest.raises(DataError) as err:
        load_beir(root, "tiny", ["test"], download=False, strict=True)
    assert str(err.value).startswith(f"{qrels.parent}/" + message.format(line=_line_count(qrels))), err.value


def test_a_query_that_is_a_document_is_a_quirk_only_while_identical_ids_are_kept(tmp_path, caplog):
    root = _dataset(tmp_path / "data", query_is_doc=True)
    queries = root / "tiny" / "queries.jsonl"
    with caplog.at_level(logging.INFO, logger="retrieval_lab.data.quirks"):
        kept = load_beir(root, "tiny", ["test"], download=False)
        ignored = load_beir(root, "tiny", ["test"], download=False, strict=True, ignore_identical_ids=True)
    assert kept.quirks["test"].counts()["queries_in_corpus"] == 1
    assert ignored.quirks["test"].counts()["queries_in_corpus"] == 1  # counted, and no error
    levels = [r.levelname for r in caplog.records if r.name == "retrieval_lab.data.quirks"]
    assert levels == ["WARNING", "INFO"]  # a warning while the query would find itself; then said
    with pytest.raises(DataError, match=rf"^{queries}:{_line_count(queries)}: query 'd3' is also a document"):
        load_beir(root, "tiny", ["test"], download=False, strict=True)


def test_evaluate_scores_every_quirk_as_pytrec_eval_does():
    qrels = {
        "q1": {"d1": 1, "gone": 1},  # a relevant document no run can hold
        "q2": {"d2": 0, "d3": 2},  # a judged non-relevant document ranked first
        "q3": {"d4": 0},  # no relevant document: trec_eval scores it 0, and it counts
        "q4": {"d5": 1},
    }
    run = {
        "q1": {"d1": 3.0, "d9": 2.0},
        "q2": {"d2": 3.0, "d3": 2.0, "d8": 1.0},
        "q3": {"d4": 2.0, "d1": 1.0},
        "q4": {"d7": 2.0, "d5": 1.0},
    }
    means, per_query = evaluate(qrels, run, list(TREC_MEASURES))
    trec = pytrec_eval.RelevanceEvaluator(qrels, set(TREC_MEASURES.values())).evaluate(run)
    assert set(per_query) == set(trec) == set(qrels)
    for ours, theirs in TREC_MEASURES.items():
        for qid in qrels:
            assert per_query[qid][ours] == pytest.approx(trec[qid][theirs], abs=1e-9), (qid, ours)
        assert means[ours] == pytest.approx(sum(t[theirs] for t in trec.values()) / len(trec), abs=1e-9)
    assert per_query["q3"]["ndcg@10"] == 0.0 and per_query["q1"]["recall@100"] == 0.5


def test_a_run_over_every_quirk_records_them_and_scores_as_pytrec_eval(tmp_path):
    extra = "".join(case[0] for case in QUIRKS.values())
    root = _dataset(tmp_path / "data", extra, query_is_doc=True)
    run_dir = tmp_path / "runs" / "quirky"
    args = ["model=tiny", "data.name=tiny", "data.download=false", "stages=[index,evaluate]", "evaluator.k=20",
            "data.ignore_identical_ids=true"]
    result = run_rlab(args, run_dir, data_root=root, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["data"]["quirks"]["test"] == {"qrels_docs_not_in_corpus": 1, "non_relevant_judgements": 2,
                                                "queries_without_relevant": 1, "queries_in_corpus": 1}
    qrels = load_beir(root, "tiny", ["test"], download=False).qrels["test"]
    run = read_run(run_dir / "run.trec")
    assert "d3" not in run["d3"]  # the query's own id was dropped
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_100"}).evaluate(run)
    assert len(trec) == len(qrels)  # q0, with no relevant document, is evaluated too
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["num_queries"] == len(qrels)
    for ours, theirs in (("ndcg@10", "ndcg_cut_10"), ("recall@100", "recall_100")):
        assert metrics["metrics"][ours] == pytest.approx(sum(t[theirs] for t in trec.values()) / len(trec), abs=1e-9)

    strict = run_rlab([*args, "data.strict=true"], tmp_path / "runs" / "strict", data_root=root, timeout=600)
    assert strict.returncode == 2
    assert strict.stderr.strip().splitlines()[-1].startswith(
        f"rlab: data error: {root / 'tiny' / 'qrels' / 'test.tsv'}:"), strict.stderr[-2000:]
