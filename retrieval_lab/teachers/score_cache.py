"""Teacher scores for every (query, document) pair the training data will show, computed once
before training and kept in ``<cache_dir>/teacher_scores/<key>.jsonl``. The key hashes the
teacher (its weights and settings), the data files, the document template and the pairs
themselves (so other negatives make another file); a teacher that changes invalidates it."""

import hashlib
import logging
from pathlib import Path
from typing import Any

from retrieval_lab.content_cache import ContentCache, DataWriter, expect_count
from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.provenance import data_checksums
from retrieval_lab.teachers.scores_file import Scores, read_scores, write_scores
from retrieval_lab.teachers.teacher import PairIds, Teacher

log = logging.getLogger(__name__)


def scores_key(teacher: Teacher, dataset: BeirDataset, split: str, pairs: PairIds,
               doc_template: str) -> tuple[str, dict[str, Any]]:
    pairs_digest = hashlib.sha256("\n".join(f"{q}\t{d}" for q, d in sorted(set(pairs))).encode()).hexdigest()
    parts = {"dataset": dataset.name, "sha256": data_checksums(dataset.path, [split]), "split": split,
             "doc_template": doc_template, "teacher": teacher.fingerprint(), "pairs_sha256": pairs_digest,
             "pairs": len(set(pairs))}
    return ContentCache.key(parts), parts


def cached_teacher_scores(teacher: Teacher, dataset: BeirDataset, split: str, pairs: PairIds,
                          doc_template: str, cache_dir: str | Path) -> tuple[Scores, Path, dict[str, Any]]:
    """The teacher's score of every pair, from the cache or computed and written there (once, by
    one of the parallel jobs that need them); returns them, the file and its record (with
    ``cache_hit``)."""
    unique = sorted(set(pairs))
    key, parts = scores_key(teacher, dataset, split, unique, doc_template)
    cache = ContentCache(cache_dir, "teacher_scores", ".jsonl")

    def load(path: Path, record: dict[str, Any]) -> Scores:
        scores = read_scores(path)
        expect_count(len({q for q, _ in scores}), record, "lines", "queries")
        expect_count(len(scores), record, "pairs", "pairs")
        return scores

    def build() -> tuple[dict[str, Any], DataWriter]:
        values = teacher.score(dataset, unique, doc_template)
        scores = {pair: float(v) for pair, v in zip(unique, values)}
        return {"key": key, **parts, "lines": len({q for q, _ in unique})}, lambda tmp: write_scores(tmp, scores)

    entry = cache.fetch(key, load, build)
    if entry.hit:
        log.info("teacher scores cache hit: %s", entry.path)
    else:
        log.info("teacher scores cache miss: scored %d pairs into %s", len(unique), entry.path)
    return entry.value, entry.path, {**entry.record, "cache_hit": entry.hit}
