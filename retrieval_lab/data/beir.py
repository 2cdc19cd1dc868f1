"""Reader for datasets in BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.

Every problem with the input raises DataError with a one-line message
``<full path>:<line>: <what is wrong>``. The files are read as UTF-8 (a leading byte-order mark
is dropped, LF or CRLF line endings: retrieval_lab/jsonl.py).

Empty texts: a query with an empty (or blank) text is an error, since it cannot be searched for and
would score 0 on every metric, silently. A document with an empty text is accepted: BEIR corpora
hold such documents, whose title is their whole content. One with neither title nor text is
accepted too, but counted and warned of in the log: it matches nothing, and refusing it would
make a published corpus unloadable for a handful of documents that qrels may still judge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from retrieval_lab.data.download import download_beir, layout_hint
from retrieval_lab.data.quirks import SplitQuirks, find_quirks, report_quirks
from retrieval_lab.errors import DataError
from retrieval_lab.jsonl import json_lines, text_lines

T = TypeVar("T")

log = logging.getLogger(__name__)

QRELS_HEADER = ["query-id", "corpus-id", "score"]


@dataclass(frozen=True)
class Document:
    title: str
    text: str


@dataclass
class BeirDataset:
    name: str
    path: Path
    corpus: dict[str, Document]  # insertion order = file order
    queries: dict[str, str]  # all queries in queries.jsonl
    qrels: dict[str, dict[str, dict[str, int]]]  # split -> query id -> doc id -> grade
    quirks: dict[str, SplitQuirks] = field(default_factory=dict)  # split -> what its qrels hold (data/quirks.py)

    def split_queries(self, split: str) -> dict[str, str]:
        """The queries judged in `split`, in qrels order."""
        if split not in self.qrels:
            raise KeyError(f"split {split!r} not loaded; loaded splits: {', '.join(self.qrels) or 'none'}")
        return {qid: self.queries[qid] for qid in self.qrels[split]}


def document_text(doc: Document, template: str = "{title} {text}") -> str:
    """The text to encode for `doc`; stripped, as MTEB/sentence-transformers encode (title + " " + text).strip()."""
    return template.format(title=doc.title, text=doc.text).strip()


def _str_field(path: Path, lineno: int, obj: dict[str, Any], key: str, default: str | None = None) -> str:
    value = obj.get(key)
    if value is None:
        if default is None:
            raise DataError(f"{path}:{lineno}: missing {key!r}")
        return default
    if not isinstance(value, str):
        raise DataError(f"{path}:{lineno}: {key!r} is not a string ({type(value).__name__})")
    return value


def _load_records(path: Path, build: Callable[[int, dict[str, Any]], T]) -> dict[str, T]:
    records: dict[str, T] = {}
    for lineno, obj in json_lines(path):
        rid = _str_field(path, lineno, obj, "_id")
        if rid in records:
            # Rescanning only on error keeps the normal path free of a per-id line table.
            first = next(n for n, o in json_lines(path) if o.get("_id") == rid)
            raise DataError(f"{path}:{lineno}: duplicate _id {rid!r} (first seen on line {first})")
        records[rid] = build(lineno, obj)
    return records


def load_corpus(path: Path) -> dict[str, Document]:
    """Documents by id, in file order; a missing or null title reads as "". A document with
    neither title nor text is kept, and counted in a warning (see the module's docstring)."""
    empty: list[tuple[int, str]] = []

    def document(lineno: int, obj: dict[str, Any]) -> Document:
        doc = Document(title=_str_field(path, lineno, obj, "title", ""), text=_str_field(path, lineno, obj, "text"))
        if not (doc.title.strip() or doc.text.strip()):
            empty.append((lineno, obj["_id"]))
        return doc

    corpus = _load_records(path, document)
    if not corpus:
        raise DataError(f"{path}: empty corpus (no documents)")
    if empty:
        log.warning("%s: %d document(s) have neither title nor text (the first: %r on line %d); they are "
                    "kept, and match no query", path, len(empty), empty[0][1], empty[0][0])
    return corpus


def load_queries(path: Path) -> dict[str, str]:
    """Query text by id, in file order; other fields (e.g. metadata) are ignored. An empty (or
    blank) query text is an error."""

    def query(lineno: int, obj: dict[str, Any]) -> str:
        text = _str_field(path, lineno, obj, "text")
        if not text.strip():
            raise DataError(f"{path}:{lineno}: query {obj['_id']!r} has an empty text")
        return text

    return _load_records(path, query)


def load_qrels(
    path: Path, *, query_ids: Container[str] | None = None, doc_ids: Container[str] | None = None,
    missing_docs: list[tuple[int, str, str]] | None = None,
) -> dict[str, dict[str, int]]:
    """Graded judgements: query id -> doc id -> grade, in file order.

    The header line is optional. When given, `query_ids` / `doc_ids` are the known ids
    and a row naming any other id is an error; where `missing_docs` is given, a row naming an
    unknown document is kept and listed there as (line, query id, doc id) instead.
    """
    qrels: dict[str, dict[str, int]] = {}
    first_row = True
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        cols = line.rstrip("\r\n").split("\t")
        header_row, first_row = first_row, False
        if header_row and cols == QRELS_HEADER:
            continue
        if len(cols) != 3:
            raise DataError(
                f"{path}:{lineno}: expected 3 tab-separated columns (query-id, corpus-id, score), got {len(cols)}"
            )
        qid, did, score = cols
        try:
            grade = int(score)
        except ValueError:
            header = " (nor is the line the header query-id<TAB>corpus-id<TAB>score)" if header_row else ""
            raise DataError(f"{path}:{lineno}: score {score!r} is not an integer{header}") from None
        if query_ids is not None and qid not in query_ids:
            raise DataError(f"{path}:{lineno}: query id {qid!r} is not in queries.jsonl")
        if doc_ids is not None and did not in doc_ids:
            if missing_docs is not None:
                missing_docs.append((lineno, qid, did))
            else:
                raise DataError(f"{path}:{lineno}: corpus id {did!r} is not in corpus.jsonl")
        judged = qrels.setdefault(qid, {})
        if did in judged:
            first = _first_qrel_line(path, qid, did)
            raise DataError(f"{path}:{lineno}: duplicate judgement ({qid!r}, {did!r}) (first seen on line {first})")
        judged[did] = grade
    return qrels


def _first_qrel_line(path: Path, qid: str, did: str) -> int:
    return next(n for n, line in text_lines(path) if line.rstrip("\r\n").split("\t")[:2] == [qid, did])


def load_beir(root: str | Path, name: str, splits: Sequence[str], download: bool = True, *, strict: bool = False,
              ignore_identical_ids: bool = False) -> BeirDataset:
    """Load `<root>/<name>` with the qrels of `splits`, downloading BEIR's zip first if it is absent.

    The quirks of real data (data/quirks.py) are logged and counted in ``quirks``; with `strict`
    each is a DataError. `ignore_identical_ids`: the evaluation drops a query's own id from its
    results, so queries that are documents are no quirk then."""
    path = Path(root) / name
    if not (path / "corpus.jsonl").is_file():
        if not download:
            raise DataError(f"dataset {name!r} not found at {path} (download disabled); {layout_hint(path)}")
        download_beir(name, root)
    qrels_dir = path / "qrels"
    for split in splits:
        if not (qrels_dir / f"{split}.tsv").is_file():
            available = sorted(p.stem for p in qrels_dir.glob("*.tsv"))
            raise DataError(
                f"{qrels_dir / f'{split}.tsv'}: split {split!r} not found; "
                f"available splits: {', '.join(available) or 'none'}"
            )
    corpus = load_corpus(path / "corpus.jsonl")
    queries = load_queries(path / "queries.jsonl")
    qrels, quirks = {}, {}
    for split in splits:
        missing: list[tuple[int, str, str]] = []
        qrels[split] = load_qrels(qrels_dir / f"{split}.tsv", query_ids=queries, doc_ids=corpus, missing_docs=missing)
        quirks[split] = find_quirks(qrels[split], corpus, missing)
        report_quirks(path, split, quirks[split], strict=strict, ignore_identical_ids=ignore_identical_ids)
    return BeirDataset(name=name, path=path, corpus=corpus, queries=queries, qrels=qrels, quirks=quirks)
