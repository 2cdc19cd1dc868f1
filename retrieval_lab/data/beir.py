"""Reader for datasets in BEIR layout: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.

Every problem with the input raises DataError with a one-line message
``<full path>:<line>: <what is wrong>``.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from retrieval_lab.data.download import download_beir, layout_hint
from retrieval_lab.errors import DataError
from retrieval_lab.jsonl import json_lines, open_text

T = TypeVar("T")

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
    """Documents by id, in file order; a missing or null title reads as ""."""
    corpus = _load_records(
        path,
        lambda n, o: Document(title=_str_field(path, n, o, "title", ""), text=_str_field(path, n, o, "text")),
    )
    if not corpus:
        raise DataError(f"{path}: empty corpus (no documents)")
    return corpus


def load_queries(path: Path) -> dict[str, str]:
    """Query text by id, in file order; other fields (e.g. metadata) are ignored."""
    return _load_records(path, lambda n, o: _str_field(path, n, o, "text"))


def load_qrels(
    path: Path, *, query_ids: Container[str] | None = None, doc_ids: Container[str] | None = None
) -> dict[str, dict[str, int]]:
    """Graded judgements: query id -> doc id -> grade, in file order.

    The header line is optional. When given, `query_ids` / `doc_ids` are the known ids
    and a row naming any other id is an error.
    """
    qrels: dict[str, dict[str, int]] = {}
    first_row = True
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            cols = line.rstrip("\r\n").split("\t")
            if first_row:
                first_row = False
                if cols == QRELS_HEADER:
                    continue
            if len(cols) != 3:
                raise DataError(
                    f"{path}:{lineno}: expected 3 tab-separated columns (query-id, corpus-id, score), got {len(cols)}"
                )
            qid, did, score = cols
            try:
                grade = int(score)
            except ValueError:
                raise DataError(f"{path}:{lineno}: score {score!r} is not an integer") from None
            if query_ids is not None and qid not in query_ids:
                raise DataError(f"{path}:{lineno}: query id {qid!r} is not in queries.jsonl")
            if doc_ids is not None and did not in doc_ids:
                raise DataError(f"{path}:{lineno}: corpus id {did!r} is not in corpus.jsonl")
            judged = qrels.setdefault(qid, {})
            if did in judged:
                first = _first_qrel_line(path, qid, did)
                raise DataError(f"{path}:{lineno}: duplicate judgement ({qid!r}, {did!r}) (first seen on line {first})")
            judged[did] = grade
    return qrels


def _first_qrel_line(path: Path, qid: str, did: str) -> int:
    with open_text(path) as f:
        return next(n for n, line in enumerate(f, start=1) if line.rstrip("\r\n").split("\t")[:2] == [qid, did])


def load_beir(root: str | Path, name: str, splits: Sequence[str], download: bool = True) -> BeirDataset:
    """Load `<root>/<name>` with the qrels of `splits`, downloading BEIR's zip first if it is absent."""
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
    qrels = {
        split: load_qrels(qrels_dir / f"{split}.tsv", query_ids=queries, doc_ids=corpus) for split in splits
    }
    return BeirDataset(name=name, path=path, corpus=corpus, queries=queries, qrels=qrels)
