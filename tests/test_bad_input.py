"""Bad input at the command line: ``rlab`` exits 2 with one line on stderr that names the config key,
or the file and line, before any work: no traceback, nothing else on stderr, nothing half-written
in the run directory or the caches. The oddities a BEIR file may legitimately have (a byte-order
mark, CRLF line endings, no qrels header, documents with an empty text) are accepted, and give
the clean dataset's run.

Every case is a real ``python -m retrieval_lab`` (tests.conftest.run_rlab). They are launched
together, as many at a time as there are CPUs, by the module's ``outcomes`` fixture (only the
selected ones), and each test then checks its own.
"""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import run_rlab, write_tiny_beir

LEXICAL = ["index=bm25", "stages=[index,evaluate]", "evaluator.k=10"]  # no model: the fastest run that reads data
TINY = ["model=tiny", "trainer.precision=32-true", "encode_precision=32-true"]
# What a run that stopped on bad input may leave: Hydra's config and log, the failed run record,
# and what the pipeline writes before it reads the data (the composed config, the CSV logger's directory).
# What a run stopped by bad input may leave, each file complete: Hydra's, the log, the record (status
# failed), the config, the CSV logger's directory, and the model's encoding contract (encoding.json,
# written whole before the first stage: a run stopped at load_index has built its model).
LEFT_BY_A_STOPPED_RUN = {".hydra", "rlab.log", "run.json", "config.yaml", "csv", "encoding.json"}
NO_SUCH_HUB_ID = "retrieval-lab-tests/no-such-model-7c1e"


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]  # after the common ones; "{base}" is the case's directory
    names: tuple[str, ...] = ()  # what the stderr line must hold: the key, or the file and line
    data: Callable[[Path], None] | None = None  # turns a copy of the tiny dataset into the bad one
    env: dict[str, str] = field(default_factory=dict)
    before: tuple[str, ...] = ()  # a run made first, in <base>/before (e.g. an index to load)
    accepted: bool = False  # the input is fine: the run must finish
    same_run_as_clean: bool = False  # ... and give the clean dataset's run file


@dataclass
class Outcome:
    result: subprocess.CompletedProcess
    base: Path
    seconds: float
    cache_before: set[str]


# --- the datasets ------------------------------------------------------------------------------
# write_tiny_beir: corpus.jsonl holds d0..d59 (line n+1 is d<n>), queries.jsonl q0..q39, and
# qrels/test.tsv a header then q30..q39 (lines 2..11), each judging one document.


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(text)


def _set_line(path: Path, lineno: int, line: bytes) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    lines[lineno - 1] = line + b"\n"
    path.write_bytes(b"".join(lines))


def _doc(doc_id: str, title: str, text: str) -> str:
    return json.dumps({"_id": doc_id, "title": title, "text": text})


def _bom(ds: Path) -> None:
    for path in (ds / "corpus.jsonl", ds / "queries.jsonl", ds / "qrels" / "test.tsv"):
        path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())


def _crlf(ds: Path) -> None:
    for path in (ds / "corpus.jsonl", ds / "queries.jsonl", ds / "qrels" / "test.tsv"):
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))


def _no_header(ds: Path) -> None:
    qrels = ds / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text().split("\n", 1)[1])


def _empty_documents(ds: Path) -> None:
    _set_line(ds / "corpus.jsonl", 51, _doc("d50", "Study 50", "").encode())  # a title is all it has
    _set_line(ds / "corpus.jsonl", 52, _doc("d51", "", "").encode())  # nothing at all


def _empty_query(ds: Path) -> None:
    _set_line(ds / "queries.jsonl", 35, json.dumps({"_id": "q34", "text": "  "}).encode())


def _latin1_byte(ds: Path) -> None:
    line = json.dumps({"_id": "d4", "title": "Study 4", "text": "caf\u00e9"}, ensure_ascii=False)
    _set_line(ds / "corpus.jsonl", 5, line.encode("latin-1"))  # 0xe9, not UTF-8's 0xc3 0xa9


CORPUS, QUERIES, QRELS = "tiny/corpus.jsonl", "tiny/queries.jsonl", "tiny/qrels/test.tsv"

CASES = [
    # -- the config: keys, group options, types ------------------------------------------------
    pytest.param(Case(("+nonsense=1",), ("config error", "nonsense")), id="unknown-key"),
    pytest.param(Case(("+objective.tempreature=0.1",), ("objective.tempreature",)), id="unknown-component-key"),
    pytest.param(Case(("objective.tempreature=0.1",), ("objective.tempreature",)), id="override-of-a-missing-key"),
    pytest.param(Case(("model=tinyy",), ("model", "tinyy")), id="misspelt-group-option"),
    pytest.param(Case(("data.batch_size=big",), ("data.batch_size",)), id="wrong-type"),
    pytest.param(Case(("trainer.max_epochs=three",), ("trainer.max_epochs",)), id="wrong-type-of-a-library-class"),
    pytest.param(Case(("stages=[train,deploy]",), ("stages", "deploy")), id="unknown-stage"),
    # -- values that cannot work ---------------------------------------------------------------
    pytest.param(Case(("data.batch_size=0",), ("data.batch_size", "must be >= 1")), id="batch-size-0"),
    pytest.param(Case(("encode_batch_size=0",), ("encode_batch_size", "must be >= 1")), id="encode-batch-size-0"),
    pytest.param(Case(("encode_precision=16-mixed",), ("encode_precision", "must be auto, 32-true or bf16-mixed")),
                 id="encode-precision-16"),
    pytest.param(Case(("evaluator.k=0",), ("evaluator.k", "must be >= 1")), id="k-0"),
    pytest.param(Case(("evaluator.k=-1",), ("evaluator.k", "must be >= 1")), id="k-negative"),
    pytest.param(Case(("objective.temperature=0",), ("objective.temperature", "must be > 0")), id="temperature-0"),
    pytest.param(Case(("objective.temperature=-0.05",), ("objective.temperature", "must be > 0")),
                 id="temperature-negative"),
    pytest.param(Case(("trainer.max_epochs=-2",), ("trainer.max_epochs",)), id="max-epochs-below-minus-1"),
    pytest.param(Case(("trainer.max_epochs=-1",), ("trainer.max_epochs", "trainer.max_steps")),
                 id="max-epochs-unlimited-without-max-steps"),
    pytest.param(Case((*TINY, "index=ivf_pq", "index.m=5"), ("index.m", "dimension 32")), id="ivf-pq-m-not-dividing-dim"),
    pytest.param(Case((*TINY, "index=opq_pq", "index.m=6"), ("index.m", "dimension 32")), id="opq-m-not-dividing-dim"),
    pytest.param(Case((*TINY, "index=factory"), ("index.spec", "32-dimensional")), id="factory-spec-for-another-dim"),
    pytest.param(Case((*TINY, "model.truncate_dim=64"), ("model.truncate_dim", "[1, 32]")), id="truncate-dim-too-large"),
    pytest.param(Case(("miner=bm25", "miner.rank_range=[50,10]"), ("miner.rank_range", "[50, 10]")),
                 id="rank-window-end-below-start"),
    pytest.param(Case(("miner=bm25", "miner.num_negatives=0"), ("miner.num_negatives",)), id="no-negatives"),
    # -- models and indexes that are not there -------------------------------------------------
    pytest.param(Case(("model.name_or_path=/nope/model",), ("model.name_or_path", "/nope/model does not exist")),
                 id="model-path-missing"),
    pytest.param(Case(("model.name_or_path=./no/such/model",), ("model.name_or_path", "./no/such/model does not exist")),
                 id="relative-model-path-missing"),
    pytest.param(Case(("model.name_or_path=/tmp",), ("model.name_or_path", "/tmp holds no config.json")),
                 id="model-path-not-a-model"),
    pytest.param(Case((f"model.name_or_path={NO_SUCH_HUB_ID}",), ("model.name_or_path", "HF_HUB_OFFLINE"),
                      env={"HF_HUB_OFFLINE": "1"}), id="hub-id-offline"),
    pytest.param(Case((f"model.name_or_path={NO_SUCH_HUB_ID}",), ("model.name_or_path", NO_SUCH_HUB_ID)),
                 id="unknown-hub-id"),  # no network here: at once; with one, the hub says it has no such model
    pytest.param(Case(("evaluator.rerank=/nope/cross_encoder",), ("evaluator.rerank", "does not exist")),
                 id="reranker-path-missing"),
    pytest.param(Case(("stages=[evaluate]", "load_index={base}"), ("load_index", "index.json is missing")),
                 id="load-index-not-an-index"),
    pytest.param(Case((*TINY, "model.pooling=cls", "stages=[evaluate]", "load_index={base}/before/index"),
                      ("index error", "/before/index", "not built from this model's embeddings"),
                      before=(*TINY, "stages=[index]")), id="index-built-for-another-model"),
    # -- the data: each names the file and line ------------------------------------------------
    pytest.param(Case(tuple(LEXICAL), (f"{CORPUS}:61", "malformed JSON"),
                      data=lambda ds: _append(ds / "corpus.jsonl", '{"_id": "x" "text": "t"}\n')), id="malformed-jsonl"),
    pytest.param(Case(tuple(LEXICAL), (f"{CORPUS}:5", "not UTF-8", "0xe9"), data=_latin1_byte), id="non-utf8-byte"),
    pytest.param(Case(tuple(LEXICAL), (f"{QRELS}:12", "expected 3 tab-separated columns", "got 2"),
                      data=lambda ds: _append(ds / "qrels" / "test.tsv", "q30\td31\n")), id="qrels-two-columns"),
    pytest.param(Case(tuple(LEXICAL), (f"{QRELS}:1", "score 'score' is not an integer", "header"),
                      data=lambda ds: _set_line(ds / "qrels" / "test.tsv", 1, b"query_id\tdoc_id\tscore")),
                 id="qrels-misspelt-header"),
    pytest.param(Case(tuple(LEXICAL), (f"{QRELS}:12", "query id 'q99' is not in queries.jsonl"),
                      data=lambda ds: _append(ds / "qrels" / "test.tsv", "q99\td1\t1\n")), id="qrel-unknown-query"),
    pytest.param(Case((*LEXICAL, "data.strict=true"), (f"{QRELS}:12", "corpus id 'd99' is not in corpus.jsonl"),
                      data=lambda ds: _append(ds / "qrels" / "test.tsv", "q30\td99\t1\n")), id="qrel-unknown-document"),
    pytest.param(Case(tuple(LEXICAL), (f"{QUERIES}:35", "'q34' has an empty text"), data=_empty_query),
                 id="empty-query-text"),
    pytest.param(Case(tuple(LEXICAL), (f"{CORPUS}:61", "duplicate _id 'd3' (first seen on line 4)"),
                      data=lambda ds: _append(ds / "corpus.jsonl", _doc("d3", "", "again") + "\n")), id="duplicate-id"),
    pytest.param(Case((*LEXICAL, "evaluator.split=dev"), ("tiny/qrels/dev.tsv", "split 'dev' not found", "test, train")),
                 id="unknown-split"),
    pytest.param(Case(tuple(LEXICAL), (CORPUS, "empty corpus"), data=lambda ds: (ds / "corpus.jsonl").write_text("\n")),
                 id="empty-corpus"),
    # -- accepted: the run finishes ------------------------------------------------------------
    pytest.param(Case(tuple(LEXICAL), data=_bom, accepted=True, same_run_as_clean=True), id="bom-accepted"),
    pytest.param(Case(tuple(LEXICAL), data=_crlf, accepted=True, same_run_as_clean=True), id="crlf-accepted"),
    pytest.param(Case(tuple(LEXICAL), data=_no_header, accepted=True, same_run_as_clean=True),
                 id="qrels-without-header-accepted"),
    pytest.param(Case(tuple(LEXICAL), data=_empty_documents, accepted=True), id="empty-document-text-accepted"),
]
# The cases the tests below the parametrized one read.
READS = {"test_a_bom_is_said_once_in_the_log": ["bom-accepted"],
         "test_documents_with_neither_title_nor_text_are_counted_in_a_warning": ["empty-document-text-accepted"],
         "test_an_unavailable_hub_id_fails_at_once": ["hub-id-offline", "unknown-hub-id"]}
CLEAN = "clean"  # the tiny dataset as written, for the accepted cases' run files to match
CLEAN_CASE = Case(tuple(LEXICAL), accepted=True)


def _files(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()} if directory.is_dir() else set()


def _launch(name: str, case: Case, root: Path) -> Outcome:
    base = root / name
    write_tiny_beir(base / "data")
    if case.data is not None:
        case.data(base / "data" / "tiny")
    common = ["data.name=tiny", "data.download=false"]
    if case.before:
        made = run_rlab([*common, *case.before], base / "before", base / "data", timeout=600)
        assert made.returncode == 0, made.stderr[-3000:]
    cache_before = _files(base / "cache")
    start = time.monotonic()
    result = run_rlab([*common, *(a.format(base=base) for a in case.args)], base / "run", base / "data",
                      timeout=600, env=case.env)
    return Outcome(result, base, time.monotonic() - start, cache_before)


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every selected case of this module, run concurrently (the slowest first)."""
    names: set[str] = set()
    for item in request.session.items:
        if item.module.__name__ == __name__:
            names |= {item.callspec.id} if hasattr(item, "callspec") else set(READS.get(item.name, ()))
    by_id = {param.id: param.values[0] for param in CASES}
    selected = {name: by_id[name] for name in names}
    if any(case.same_run_as_clean for case in selected.values()):
        selected[CLEAN] = CLEAN_CASE
    root = tmp_path_factory.mktemp("bad_input")
    order = sorted(selected, key=lambda name: (not selected[name].before, not selected[name].accepted,
                                               not selected[name].data))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {name: pool.submit(_launch, name, selected[name], root) for name in order}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case: Case, outcomes: dict[str, Outcome], request: pytest.FixtureRequest) -> None:
    outcome = outcomes[request.node.callspec.id]
    result, run_dir = outcome.result, outcome.base / "run"
    if case.accepted:
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Traceback" not in result.stderr and "rlab:" not in result.stderr, result.stderr
        assert json.loads((run_dir / "metrics.json").read_text())["num_queries"] == 10
        if case.same_run_as_clean:
            assert (run_dir / "run.trec").read_text() == (outcomes[CLEAN].base / "run" / "run.trec").read_text()
        return
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlab: "), result.stderr[-3000:]
    for name in case.names:
        assert name in lines[0], lines[0]
    left = {p.name for p in run_dir.iterdir()} if run_dir.exists() else set()
    assert left <= LEFT_BY_A_STOPPED_RUN, left - LEFT_BY_A_STOPPED_RUN
    assert not [p for p in run_dir.rglob("*") if "tmp" in p.name or (p.name.startswith(".") and p.name != ".hydra")]
    if (run_dir / "run.json").exists():
        assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert _files(outcome.base / "cache") == outcome.cache_before  # nothing cached by the stopped run


def test_a_bom_is_said_once_in_the_log(outcomes: dict[str, Outcome]) -> None:
    log = (outcomes["bom-accepted"].base / "run" / "rlab.log").read_text()
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        assert log.count(f"tiny/{name} starts with a UTF-8 byte-order mark") == 1, log


def test_documents_with_neither_title_nor_text_are_counted_in_a_warning(outcomes: dict[str, Outcome]) -> None:
    log = (outcomes["empty-document-text-accepted"].base / "run" / "rlab.log").read_text()
    assert "1 document(s) have neither title nor text (the first: 'd51' on line 52)" in log, log
    assert "WARNING" in next(line for line in log.splitlines() if "neither title nor text" in line)


def test_an_unavailable_hub_id_fails_at_once(outcomes: dict[str, Outcome]) -> None:
    """At config validation (exit status 2, before any stage), not after from_pretrained's minute
    of retries: huggingface_hub logs each retry ("Retrying in ...")."""
    for name in ("hub-id-offline", "unknown-hub-id"):
        result = outcomes[name].result
        assert result.returncode == 2 and "rlab: config error: model.name_or_path" in result.stderr, name
        assert "Retrying in" not in result.stdout + result.stderr, name
