"""The negatives file: mined once, reused by later runs; users may bring their own.

Format: JSON lines, one query per line, in any order::

    {"query_id": "q12", "negatives": ["d3", "d77"], "scores": [13.2, 12.9]}

``scores`` (the mining model's score of each negative, same order; ``null`` for a negative without
one, such as STAR's random ones) is optional; queries without
a line have no hard negatives. A file written by a miner has a sidecar ``<name>.json`` with what
produced it (dataset, split, miner config, mining model) and its drop counts.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retrieval_lab.atomic import atomic_path
from retrieval_lab.errors import DataError
from retrieval_lab.jsonl import json_lines

Negatives = dict[str, list[tuple[str, float | None]]]  # query id -> [(doc id, score or None)]


def write_negatives(path: Path, negatives: Negatives) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for query_id, pairs in negatives.items():
            line: dict[str, Any] = {"query_id": query_id, "negatives": [d for d, _ in pairs]}
            if any(s is not None for _, s in pairs):
                line["scores"] = [s for _, s in pairs]
            handle.write(json.dumps(line) + "\n")


def read_negatives(path: Path, doc_ids: Mapping[str, Any] | None = None) -> Negatives:
    """Reads and checks a negatives file; errors name the file and line. With ``doc_ids``, every
    negative must be a document of the corpus."""
    negatives: Negatives = {}
    for lineno, obj in json_lines(path):
        where = f"{path}:{lineno}"
        query_id, docs = obj.get("query_id"), obj.get("negatives")
        if not isinstance(query_id, str):
            raise DataError(f"{where}: 'query_id' must be a string")
        if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
            raise DataError(f"{where}: 'negatives' must be a list of doc id strings")
        scores = obj.get("scores")
        if scores is None:
            scores = [None] * len(docs)
        elif not isinstance(scores, list) or len(scores) != len(docs) or not all(
                s is None or isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores):
            raise DataError(f"{where}: 'scores' must be a list of {len(docs)} numbers (or nulls), one per negative")
        if query_id in negatives:
            raise DataError(f"{where}: query {query_id!r} appears twice")
        if doc_ids is not None:
            unknown = [d for d in docs if d not in doc_ids]
            if unknown:
                raise DataError(f"{where}: negative {unknown[0]!r} is not in the corpus")
        negatives[query_id] = [(d, None if s is None else float(s)) for d, s in zip(docs, scores)]
    return negatives
