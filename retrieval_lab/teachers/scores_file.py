"""The teacher scores file: computed once before training, read with every batch; users may bring
scores from a teacher this framework cannot run.

Format: JSON lines, one query per line, in any order::

    {"query_id": "q12", "doc_ids": ["d3", "d77", "d5"], "scores": [8.1, 2.4, -1.0]}

one score per document (any scale: the losses normalize or use margins). A pair a batch needs
that the file lacks is an error naming the query and document.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retrieval_lab.atomic import atomic_path
from retrieval_lab.errors import DataError
from retrieval_lab.jsonl import json_lines

Scores = dict[tuple[str, str], float]  # (query id, doc id) -> score


def write_scores(path: Path, scores: Scores) -> None:
    by_query: dict[str, list[tuple[str, float]]] = {}
    for (query_id, doc_id), score in scores.items():
        by_query.setdefault(query_id, []).append((doc_id, score))
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for query_id, pairs in by_query.items():
            line = {"query_id": query_id, "doc_ids": [d for d, _ in pairs], "scores": [float(s) for _, s in pairs]}
            handle.write(json.dumps(line) + "\n")


def read_scores(path: Path, doc_ids: Mapping[str, Any] | None = None) -> Scores:
    """Reads and checks a scores file; errors name the file and line."""
    scores: Scores = {}
    for lineno, obj in json_lines(path):
        where = f"{path}:{lineno}"
        query_id, docs, values = obj.get("query_id"), obj.get("doc_ids"), obj.get("scores")
        if not isinstance(query_id, str):
            raise DataError(f"{where}: 'query_id' must be a string")
        if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
            raise DataError(f"{where}: 'doc_ids' must be a list of doc id strings")
        if not isinstance(values, list) or len(values) != len(docs) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise DataError(f"{where}: 'scores' must be a list of {len(docs)} numbers, one per doc id")
        for doc_id, value in zip(docs, values):
            if doc_ids is not None and doc_id not in doc_ids:
                raise DataError(f"{where}: document {doc_id!r} is not in the corpus")
            if (query_id, doc_id) in scores:
                raise DataError(f"{where}: pair ({query_id!r}, {doc_id!r}) is scored twice")
            scores[(query_id, doc_id)] = float(value)
    return scores

