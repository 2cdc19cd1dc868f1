"""The quirks of real BEIR data, found once at load, counted, and scored as trec_eval scores them.

- A qrel whose document is not in the corpus (BEIR's ArguAna has some): kept, a relevant document
  that no retriever can return. trec_eval takes the number of relevant documents from the qrels
  alone, so it lowers recall and the ideal DCG of its query, exactly as it does here.
- A query that is also a document (same id): it finds itself first. With ``ignore_identical_ids``
  (BEIR's and MTEB's setting for ArguAna and Quora) the evaluator drops it from its own results.
- A judgement of grade 0 (or below): judged non-relevant; it adds no gain and is not a relevant
  document for recall, MRR or MAP, as in trec_eval.
- A query whose judgements hold no relevant document: trec_eval (and so pytrec_eval, BEIR and
  MTEB) still evaluates it when it has results, with every measure 0, so it lowers the mean.

Each is said in one log line and counted in the run record; with ``strict`` each is a DataError
naming the file and line instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from retrieval_lab.errors import DataError
from retrieval_lab.jsonl import json_lines, text_lines

log = logging.getLogger(__name__)


@dataclass
class SplitQuirks:
    """What one split's qrels hold that a clean dataset would not."""

    missing_docs: list[tuple[int, str, str]] = field(default_factory=list)  # (qrels line, query id, doc id)
    non_relevant: int = 0  # judgements of grade <= 0
    no_relevant: list[str] = field(default_factory=list)  # queries with no judgement of grade > 0
    in_corpus: list[str] = field(default_factory=list)  # queries whose id is a document id

    def counts(self) -> dict[str, int]:
        """The run record's view: how many of each."""
        return {"qrels_docs_not_in_corpus": len(self.missing_docs), "non_relevant_judgements": self.non_relevant,
                "queries_without_relevant": len(self.no_relevant), "queries_in_corpus": len(self.in_corpus)}


def find_quirks(qrels: dict[str, dict[str, int]], corpus: dict, missing_docs: list[tuple[int, str, str]]) -> SplitQuirks:
    return SplitQuirks(
        missing_docs=missing_docs,
        non_relevant=sum(grade <= 0 for docs in qrels.values() for grade in docs.values()),
        no_relevant=[q for q, docs in qrels.items() if not any(g > 0 for g in docs.values())],
        in_corpus=[q for q in qrels if q in corpus],
    )


def report_quirks(path: Path, split: str, quirks: SplitQuirks, *, strict: bool, ignore_identical_ids: bool) -> None:
    """One log line per quirk found in ``path``'s ``split``; with ``strict``, a DataError for the first."""
    qrels_path = path / "qrels" / f"{split}.tsv"
    if quirks.missing_docs:
        line, qid, did = quirks.missing_docs[0]
        if strict:
            raise DataError(f"{qrels_path}:{line}: corpus id {did!r} is not in corpus.jsonl")
        log.warning("%s: %d judgement(s) name documents that are not in corpus.jsonl (the first: %r on line %d); "
                    "they count as relevant documents that cannot be retrieved, as trec_eval counts them "
                    "(data.strict=true refuses them)", qrels_path, len(quirks.missing_docs), did, line)
    if quirks.no_relevant:  # before grade 0: such a query's judgements are all grade 0
        if strict:
            line = _first_line_of(qrels_path, quirks.no_relevant[0])
            raise DataError(f"{qrels_path}:{line}: query {quirks.no_relevant[0]!r} has no relevant document "
                            "(data.strict=false scores it 0 on every metric, as trec_eval does)")
        log.warning("%s: %d quer(ies) have no relevant document (the first: %r); each scores 0 on every metric "
                    "and counts in the mean, as trec_eval scores them", qrels_path, len(quirks.no_relevant),
                    quirks.no_relevant[0])
    if quirks.non_relevant:
        if strict:
            line, qid, did = _first_non_relevant(qrels_path)
            raise DataError(f"{qrels_path}:{line}: ({qid!r}, {did!r}) is judged non-relevant (grade <= 0) "
                            "(data.strict=false accepts it: no gain, not a relevant document)")
        log.info("%s: %d judgement(s) of grade <= 0: judged non-relevant, no gain (as in trec_eval)",
                 qrels_path, quirks.non_relevant)
    if quirks.in_corpus:
        if ignore_identical_ids:
            log.info("%s: %d of the %s queries are also documents; ignore_identical_ids drops each from its "
                     "own results", path, len(quirks.in_corpus), split)
        elif strict:
            line = _first_query_line(path / "queries.jsonl", quirks.in_corpus[0])
            raise DataError(f"{path / 'queries.jsonl'}:{line}: query {quirks.in_corpus[0]!r} is also a document of "
                            "corpus.jsonl and finds itself (set data.ignore_identical_ids=true, as BEIR does)")
        else:
            log.warning("%s: %d of the %s queries are also documents and will find themselves (the first: %r); "
                        "BEIR sets ignore_identical_ids for such datasets", path, len(quirks.in_corpus), split,
                        quirks.in_corpus[0])


def _first_non_relevant(qrels_path: Path) -> tuple[int, str, str]:
    for line, text in text_lines(qrels_path):
        cols = text.rstrip("\r\n").split("\t")
        if len(cols) == 3 and cols[2].lstrip("-").isdigit() and int(cols[2]) <= 0:
            return line, cols[0], cols[1]
    raise AssertionError(f"{qrels_path}: no grade <= 0 found again")


def _first_line_of(qrels_path: Path, qid: str) -> int:
    return next(line for line, text in text_lines(qrels_path) if text.split("\t", 1)[0] == qid)


def _first_query_line(queries_path: Path, qid: str) -> int:
    return next(line for line, obj in json_lines(queries_path) if obj.get("_id") == qid)
