"""TREC run files: ``qid Q0 docid rank score tag``, one line per retrieved document."""

from __future__ import annotations

import math
import os
from pathlib import Path

from retrieval_lab.atomic import atomic_write_text
from retrieval_lab.errors import DataError

Run = dict[str, dict[str, float]]  # query id -> doc id -> score


def trec_order(docs: dict[str, float]) -> list[tuple[str, float]]:
    """(doc id, score) pairs by score descending, ties by doc id descending (trec_eval's order)."""
    return sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)


def write_run(path: str | os.PathLike[str], run: Run, tag: str = "rlab") -> None:
    """Write ``run`` atomically (a crash never leaves half a run file).

    Scores are written with ``repr(float(score))``: the shortest decimal string that parses
    back to the identical double, so float32 and float64 scores round-trip bit-exactly
    (``%.8g`` would not: float32 needs 9 significant digits).
    """
    path = Path(path)
    for field in (tag, *run):
        _check_token(field)
    lines = []
    for qid, docs in run.items():
        for rank, (doc_id, score) in enumerate(trec_order(docs), start=1):
            _check_token(doc_id)
            if math.isnan(score):
                raise ValueError(f"NaN score for query {qid!r}, doc {doc_id!r}")
            lines.append(f"{qid} Q0 {doc_id} {rank} {float(score)!r} {tag}\n")
    atomic_write_text(path, "".join(lines))


def read_run(path: str | os.PathLike[str]) -> Run:
    """Parse a TREC run file; blank lines are skipped, anything else malformed raises DataError."""
    run: Run = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{lineno}"
            if len(fields) != 6:
                raise DataError(f"{where}: expected 6 fields 'qid Q0 docid rank score tag', got {len(fields)}")
            qid, _, doc_id, rank, score, _ = fields
            try:
                int(rank)
                value = float(score)
            except ValueError:
                raise DataError(f"{where}: bad rank {rank!r} or score {score!r}") from None
            if math.isnan(value):
                raise DataError(f"{where}: NaN score")
            docs = run.setdefault(qid, {})
            if doc_id in docs:
                raise DataError(f"{where}: duplicate doc {doc_id!r} for query {qid!r}")
            docs[doc_id] = value
    return run


def _check_token(field: str) -> None:
    if not field or any(c.isspace() for c in field):
        raise ValueError(f"TREC run fields must be non-empty and free of whitespace: {field!r}")
