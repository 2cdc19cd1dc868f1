from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import threading
import zipfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from retrieval_lab.data.beir import (
    Document,
    document_text,
    load_beir,
    load_corpus,
    load_qrels,
    load_queries,
)
from retrieval_lab.data.download import BEIR_MD5, download_beir
from retrieval_lab.errors import DataError

SHARED_DATA = Path(os.environ.get("RLAB_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: connections are refused

CORPUS = [
    {"_id": "d2", "title": "Second", "text": "Beta text."},
    {"_id": "d1", "title": "", "text": "Alpha text."},
    {"_id": "d3", "text": "No title at all."},
]
QUERIES = [
    {"_id": "q1", "text": "what is alpha", "metadata": {}},
    {"_id": "q2", "text": "what is beta"},
    {"_id": "q3", "text": "never judged"},
]
TEST_QRELS = "query-id\tcorpus-id\tscore\nq2\td2\t2\nq2\td3\t0\nq1\td1\t1\n"
TRAIN_QRELS = "query-id\tcorpus-id\tscore\nq1\td2\t1\n"


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def write_dataset(root: Path, name: str = "tiny", **overrides: str) -> Path:
    """A small valid BEIR dataset; `overrides` replace file contents, keyed corpus/queries/test/train."""
    files = {"corpus": jsonl(CORPUS), "queries": jsonl(QUERIES), "test": TEST_QRELS, "train": TRAIN_QRELS}
    files.update(overrides)
    path = root / name
    (path / "qrels").mkdir(parents=True)
    (path / "corpus.jsonl").write_text(files["corpus"])
    (path / "queries.jsonl").write_text(files["queries"])
    (path / "qrels" / "test.tsv").write_text(files["test"])
    (path / "qrels" / "train.tsv").write_text(files["train"])
    return path


def raises_at(
    path: Path, line: int | None, *fragments: str
) -> AbstractContextManager[pytest.ExceptionInfo[DataError]]:
    """Expect a one-line DataError that starts with the full `path` (and `line`) and contains `fragments`."""
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    pattern = "^" + re.escape(prefix) + "".join(f"(?=.*{re.escape(s)})" for s in fragments) + "[^\n]*$"
    return pytest.raises(DataError, match=pattern)


# --- a valid dataset ---------------------------------------------------------------------------


def test_valid_dataset_loads(tmp_path: Path) -> None:
    path = write_dataset(tmp_path)
    ds = load_beir(tmp_path, "tiny", ["test", "train"], download=False)

    assert ds.name == "tiny" and ds.path == path
    assert list(ds.corpus) == ["d2", "d1", "d3"]
    assert ds.corpus["d2"] == Document(title="Second", text="Beta text.")
    assert ds.corpus["d3"] == Document(title="", text="No title at all.")
    assert ds.queries == {"q1": "what is alpha", "q2": "what is beta", "q3": "never judged"}
    assert ds.qrels == {
        "test": {"q2": {"d2": 2, "d3": 0}, "q1": {"d1": 1}},
        "train": {"q1": {"d2": 1}},
    }
    assert list(ds.split_queries("test").items()) == [("q2", "what is beta"), ("q1", "what is alpha")]
    assert ds.split_queries("train") == {"q1": "what is alpha"}
    with pytest.raises(KeyError, match="dev"):
        ds.split_queries("dev")


def test_document_text() -> None:
    assert document_text(Document("Title", "Body.")) == "Title Body."
    assert document_text(Document("", "Body.")) == "Body."
    assert document_text(Document("Title", "")) == "Title"
    assert document_text(Document("T", "B"), "{title}\n{text}") == "T\nB"


def test_blank_lines_and_missing_header_are_accepted(tmp_path: Path) -> None:
    write_dataset(
        tmp_path,
        corpus="\n" + jsonl(CORPUS[:1]) + "   \n" + jsonl(CORPUS[1:]) + "\n",
        queries=jsonl(QUERIES) + "\n\n",
        test="q2\td2\t2\n\nq1\td1\t1\r\n",
    )
    ds = load_beir(tmp_path, "tiny", ["test"], download=False)
    assert list(ds.corpus) == ["d2", "d1", "d3"]
    assert len(ds.queries) == 3
    assert ds.qrels == {"test": {"q2": {"d2": 2}, "q1": {"d1": 1}}}


def test_loaders_work_on_their_own(tmp_path: Path) -> None:
    path = write_dataset(tmp_path)
    assert list(load_corpus(path / "corpus.jsonl")) == ["d2", "d1", "d3"]
    assert list(load_queries(path / "queries.jsonl")) == ["q1", "q2", "q3"]
    # Without known ids, unknown ids are not an error.
    assert load_qrels(path / "qrels" / "train.tsv") == {"q1": {"d2": 1}}


# --- malformed input ---------------------------------------------------------------------------

BAD_JSONL = [
    pytest.param('{"_id": "x" "text": "t"}\n', 2, "malformed JSON (Expecting ',' delimiter)", id="bad-json"),
    pytest.param('["_id", "x"]\n', 2, "expected a JSON object, got list", id="not-object"),
    pytest.param('{"text": "t"}\n', 2, "missing '_id'", id="no-id"),
    pytest.param('{"_id": 5, "text": "t"}\n', 2, "'_id' is not a string", id="int-id"),
    pytest.param('{"_id": "x", "title": "t"}\n', 2, "missing 'text'", id="no-text"),
]


@pytest.mark.parametrize(("bad", "line", "message"), BAD_JSONL)
def test_malformed_corpus(tmp_path: Path, bad: str, line: int, message: str) -> None:
    path = write_dataset(tmp_path, corpus=jsonl(CORPUS[:1]) + bad + jsonl(CORPUS[1:]))
    with raises_at(path / "corpus.jsonl", line, message):
        load_beir(tmp_path, "tiny", ["test"], download=False)


@pytest.mark.parametrize(("bad", "line", "message"), BAD_JSONL)
def test_malformed_queries(tmp_path: Path, bad: str, line: int, message: str) -> None:
    path = write_dataset(tmp_path, queries=jsonl(QUERIES[:1]) + bad + jsonl(QUERIES[1:]))
    with raises_at(path / "queries.jsonl", line, message):
        load_beir(tmp_path, "tiny", ["test"], download=False)


def test_non_string_title(tmp_path: Path) -> None:
    path = write_dataset(tmp_path, corpus=jsonl([*CORPUS, {"_id": "d4", "title": 7, "text": "t"}]))
    with raises_at(path / "corpus.jsonl", 4, "'title' is not a string"):
        load_corpus(path / "corpus.jsonl")


def test_duplicate_ids(tmp_path: Path) -> None:
    corpus = jsonl(CORPUS) + "\n" + jsonl([{"_id": "d1", "title": "", "text": "again"}])
    queries = jsonl([*QUERIES, {"_id": "q1", "text": "again"}])
    path = write_dataset(tmp_path, corpus=corpus, queries=queries)
    with raises_at(path / "corpus.jsonl", 5, "duplicate _id 'd1' (first seen on line 2)"):
        load_corpus(path / "corpus.jsonl")
    with raises_at(path / "queries.jsonl", 4, "duplicate _id 'q1' (first seen on line 1)"):
        load_queries(path / "queries.jsonl")


def test_empty_corpus(tmp_path: Path) -> None:
    path = write_dataset(tmp_path, corpus="\n\n")
    with raises_at(path / "corpus.jsonl", None, "empty corpus"):
        load_beir(tmp_path, "tiny", ["test"], download=False)


@pytest.mark.parametrize(
    ("qrels", "line", "message"),
    [
        pytest.param(TEST_QRELS + "q1\td2\n", 5, "expected 3 tab-separated columns", id="two-columns"),
        pytest.param(TEST_QRELS + "q1 d2 1\n", 5, "got 1", id="spaces"),
        pytest.param(TEST_QRELS + "\nq1\td2\t1\textra\n", 6, "got 4", id="four-columns"),
        pytest.param(TEST_QRELS + "q1\td2\t1.5\n", 5, "score '1.5' is not an integer", id="float-score"),
        pytest.param("query_id\tdoc_id\tscore\n", 1, "score 'score' is not an integer (nor is the line the header",
                     id="unknown-header"),
        pytest.param(TEST_QRELS + "q9\td1\t1\n", 5, "query id 'q9' is not in queries.jsonl", id="unknown-query"),
        pytest.param(TEST_QRELS + "q1\td9\t1\n", 5, "corpus id 'd9' is not in corpus.jsonl", id="unknown-doc"),
        pytest.param(
            TEST_QRELS + "q2\td3\t1\n", 5, "duplicate judgement ('q2', 'd3') (first seen on line 3)", id="duplicate"
        ),
    ],
)
def test_malformed_qrels(tmp_path: Path, qrels: str, line: int, message: str) -> None:
    path = write_dataset(tmp_path, test=qrels)
    with raises_at(path / "qrels" / "test.tsv", line, message):  # strict: a missing document is an error too
        load_beir(tmp_path, "tiny", ["train", "test"], download=False, strict=True)


def test_a_bom_and_crlf_line_endings_are_accepted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clean = load_beir(write_dataset(tmp_path / "clean").parent, "tiny", ["test", "train"], download=False)
    files = {"corpus": jsonl(CORPUS), "queries": jsonl(QUERIES), "test": TEST_QRELS, "train": TRAIN_QRELS}
    path = write_dataset(tmp_path, **{k: "\ufeff" + v.replace("\n", "\r\n") for k, v in files.items()})
    with caplog.at_level("INFO", logger="retrieval_lab.jsonl"):
        ds = load_beir(tmp_path, "tiny", ["test", "train"], download=False)
    assert (ds.corpus, ds.queries, ds.qrels) == (clean.corpus, clean.queries, clean.qrels)
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv", "qrels/train.tsv"):
        assert caplog.text.count(f"{path / name} starts with a UTF-8 byte-order mark") == 1


def test_a_byte_that_is_not_utf8_names_file_line_and_column(tmp_path: Path) -> None:
    path = write_dataset(tmp_path)
    (path / "corpus.jsonl").write_bytes(jsonl(CORPUS[:1]).encode() + '{"_id": "x", "text": "caf\u00e9"}\n'.encode("latin-1"))
    with raises_at(path / "corpus.jsonl", 2, "not UTF-8: byte 0xe9 at column 26"):
        load_corpus(path / "corpus.jsonl")


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_query_text_is_an_error(tmp_path: Path, text: str) -> None:
    path = write_dataset(tmp_path, queries=jsonl([*QUERIES, {"_id": "q4", "text": text}]))
    with raises_at(path / "queries.jsonl", 4, "query 'q4' has an empty text"):
        load_queries(path / "queries.jsonl")


def test_empty_documents_are_kept_and_the_ones_with_nothing_counted(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    empty = [{"_id": "d4", "title": "Only a title", "text": ""}, {"_id": "d5", "title": "", "text": ""},
             {"_id": "d6", "text": " "}]
    path = write_dataset(tmp_path, corpus=jsonl(CORPUS + empty))
    with caplog.at_level("WARNING", logger="retrieval_lab.data.beir"):
        corpus = load_corpus(path / "corpus.jsonl")
    assert corpus["d4"] == Document("Only a title", "") and corpus["d5"] == Document("", "")
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "2 document(s) have neither title nor text (the first: 'd5' on line 5)" in caplog.text


def test_missing_split_lists_available(tmp_path: Path) -> None:
    path = write_dataset(tmp_path)
    with raises_at(path / "qrels" / "dev.tsv", None, "split 'dev' not found", "available splits: test, train"):
        load_beir(tmp_path, "tiny", ["test", "dev"], download=False)


def test_missing_queries_file(tmp_path: Path) -> None:
    path = write_dataset(tmp_path)
    (path / "queries.jsonl").unlink()
    with raises_at(path / "queries.jsonl", None, "cannot read"):
        load_beir(tmp_path, "tiny", ["test"], download=False)


def test_missing_dataset_without_download(tmp_path: Path) -> None:
    dest = tmp_path / "tiny"
    with pytest.raises(DataError, match="download disabled") as info:
        load_beir(tmp_path, "tiny", ["test"], download=False)
    assert str(dest / "corpus.jsonl") in str(info.value)
    assert "RLAB_DATA_DIR" in str(info.value)
    assert not dest.exists()


# --- download ----------------------------------------------------------------------------------


def test_published_checksums() -> None:
    assert BEIR_MD5["scifact"] == "5f7d1de60b170fc8027bb7898e2efca1"
    assert len(BEIR_MD5) == 15 and BEIR_MD5["nfcorpus"] == "a89dba18a62ef92f7d323ec890a0d38d"
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in BEIR_MD5.values())


def test_unknown_name_without_checksum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no published checksum for BEIR dataset 'tiny'"):
        load_beir(tmp_path / "data", "tiny", ["test"])  # download=True goes through download_beir
    assert not (tmp_path / "data").exists()


def test_download_without_network(tmp_path: Path) -> None:
    root = tmp_path / "data"
    dest = root / "scifact"
    with pytest.raises(DataError) as info:
        download_beir("scifact", root, base_url=UNREACHABLE, timeout=5)
    message = str(info.value)
    assert "\n" not in message
    assert f"not found at {dest}" in message
    assert "http://127.0.0.1:9/scifact.zip failed" in message
    assert f"{dest}/corpus.jsonl, {dest}/queries.jsonl and {dest}/qrels/<split>.tsv" in message
    assert "RLAB_DATA_DIR" in message and "data.root" in message
    assert not dest.exists()
    assert list(root.iterdir()) == []


def test_download_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "scifact").mkdir()
    (tmp_path / "scifact" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists"):
        download_beir("scifact", tmp_path, base_url=UNREACHABLE)
    assert (tmp_path / "scifact" / "notes.txt").read_text() == "mine"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1, and its base URL."""
    directory = tmp_path / "served"
    directory.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield directory, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def make_zip(target: Path, files: dict[str, str]) -> str:
    """Write a zip of `files` (archive name -> text) to `target`; return its MD5."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    target.write_bytes(buffer.getvalue())
    return hashlib.md5(buffer.getvalue()).hexdigest()


TINY_ZIP = {
    "tiny/corpus.jsonl": jsonl(CORPUS),
    "tiny/queries.jsonl": jsonl(QUERIES),
    "tiny/qrels/test.tsv": TEST_QRELS,
}


def test_download_checksum_mismatch(tmp_path: Path, served: tuple[Path, str]) -> None:
    directory, url = served
    md5 = make_zip(directory / "tiny.zip", TINY_ZIP)
    root = tmp_path / "data"
    wrong = "0" * 32
    with pytest.raises(DataError, match=f"tiny.zip: MD5 mismatch \\(expected {wrong}, got {md5}\\)"):
        download_beir("tiny", root, md5=wrong, base_url=url)
    assert list(root.iterdir()) == []


def test_download_verified_then_loads(tmp_path: Path, served: tuple[Path, str]) -> None:
    directory, url = served
    md5 = make_zip(directory / "tiny.zip", TINY_ZIP)
    root = tmp_path / "data"
    assert download_beir("tiny", root, md5=md5.upper(), base_url=url) == root / "tiny"
    assert [p.name for p in root.iterdir()] == ["tiny"]  # no temporary leftovers
    ds = load_beir(root, "tiny", ["test"], download=False)
    assert list(ds.corpus) == ["d2", "d1", "d3"]
    assert ds.qrels["test"] == {"q2": {"d2": 2, "d3": 0}, "q1": {"d1": 1}}


def test_download_flat_archive_into_empty_directory(tmp_path: Path, served: tuple[Path, str]) -> None:
    directory, url = served
    md5 = make_zip(directory / "tiny.zip", {k.removeprefix("tiny/"): v for k, v in TINY_ZIP.items()})
    root = tmp_path / "data"
    (root / "tiny").mkdir(parents=True)
    download_beir("tiny", root, md5=md5, base_url=url)
    assert [p.name for p in root.iterdir()] == ["tiny"]
    assert len(load_beir(root, "tiny", ["test"]).corpus) == 3


def test_download_archive_without_corpus(tmp_path: Path, served: tuple[Path, str]) -> None:
    directory, url = served
    md5 = make_zip(directory / "tiny.zip", {"tiny/queries.jsonl": jsonl(QUERIES)})
    root = tmp_path / "data"
    with pytest.raises(DataError, match="archive has no tiny/corpus.jsonl"):
        download_beir("tiny", root, md5=md5, base_url=url)
    assert list(root.iterdir()) == []


def test_download_not_a_zip(tmp_path: Path, served: tuple[Path, str]) -> None:
    directory, url = served
    (directory / "tiny.zip").write_bytes(b"not a zip")
    root = tmp_path / "data"
    with pytest.raises(DataError, match="not a valid zip archive"):
        download_beir("tiny", root, md5=hashlib.md5(b"not a zip").hexdigest(), base_url=url)
    assert list(root.iterdir()) == []


def test_download_http_error(tmp_path: Path, served: tuple[Path, str]) -> None:
    _, url = served
    with pytest.raises(DataError, match="tiny.zip failed \\(File not found\\)"):
        download_beir("tiny", tmp_path / "data", md5="0" * 32, base_url=url)
    assert list((tmp_path / "data").iterdir()) == []


# --- the real SciFact --------------------------------------------------------------------------


@pytest.mark.scifact
@pytest.mark.skipif(not (SHARED_DATA / "scifact").is_dir(), reason=f"no SciFact under {SHARED_DATA}")
def test_real_scifact() -> None:
    ds = load_beir(SHARED_DATA, "scifact", ["test", "train"], download=False)

    assert len(ds.corpus) == 5183
    assert len(ds.queries) == 1109
    assert len(ds.split_queries("test")) == 300
    assert sum(map(len, ds.qrels["test"].values())) == 339
    assert len(ds.split_queries("train")) == 809
    assert sum(map(len, ds.qrels["train"].values())) == 919
    first = next(iter(ds.corpus.values()))
    assert first.title.startswith("Microstructural development of human newborn cerebral white matter")
    assert document_text(first) == f"{first.title} {first.text}".strip()
