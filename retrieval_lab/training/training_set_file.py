"""The training set on disk, ``<run dir>/training_set/``: what a run trained on, exactly, so a
repeated or resumed run (or a reader) loads it instead of mining and teaching again.

Files: ``training_set.json`` (dataset, split, document template, the queries trained on, each
query's positives, the pairs, the held-out queries' texts and document ids, the pool size), written last;
``negatives.jsonl`` (the pools as trained on: positives removed, topped up; the negatives file
format), ``teacher_scores.jsonl`` (the scores file format), ``teacher_embeddings.npz`` (query and
in-batch teacher embeddings, with their ids). The query texts are kept (pseudo-queries are no
dataset's); document texts are not: a load takes them from the dataset, which must be the one the
set was made from.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_lab.atomic import atomic_directory, atomic_write_json
from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.errors import DataError
from retrieval_lab.mining.negatives_file import read_negatives, write_negatives
from retrieval_lab.teachers.scores_file import read_scores, write_scores
from retrieval_lab.training.training_set import InBatchTeacher, Pair, TrainingSet, held_out_slice

MANIFEST = "training_set.json"
NEGATIVES = "negatives.jsonl"
TEACHER_SCORES = "teacher_scores.jsonl"
TEACHER_EMBEDDINGS = "teacher_embeddings.npz"


def save_training_set(training_set: TrainingSet, directory: str | Path) -> None:
    """Writes ``training_set`` to ``directory`` whole or not at all (a fresh directory renamed
    into place, replacing an older one)."""
    ts = training_set
    held = ts.held_out
    manifest: dict[str, Any] = {
        "dataset": ts.dataset.name, "split": ts.split, "doc_template": ts.doc_template,
        "queries": ts.queries, "positives": {q: sorted(docs) for q, docs in ts.positives.items()},
        "pairs": [[p.query_id, p.doc_id] for p in ts.pairs],
        "held_out": {"queries": held.queries, "corpus": list(held.corpus)} if held else None,
        "negatives_per_pair": ts.negatives_per_pair, "topped_up": ts.topped_up,
    }
    with atomic_directory(directory) as tmp:
        if ts.negatives:
            write_negatives(tmp / NEGATIVES, ts.negatives)
        if ts.teacher_scores is not None:
            write_scores(tmp / TEACHER_SCORES, ts.teacher_scores)
        arrays = {}
        for name, embeddings in (("teacher_query", ts.teacher_query),
                                 ("in_batch_queries", ts.in_batch_teacher and ts.in_batch_teacher.queries),
                                 ("in_batch_documents", ts.in_batch_teacher and ts.in_batch_teacher.documents)):
            if embeddings:
                arrays[f"{name}_ids"] = np.array(list(embeddings))
                arrays[name] = np.stack(list(embeddings.values()))
        if arrays:
            np.savez(tmp / TEACHER_EMBEDDINGS, **arrays)
        atomic_write_json(tmp / MANIFEST, manifest)


def load_training_set(directory: str | Path, dataset: BeirDataset) -> TrainingSet:
    """The training set saved in ``directory``, its texts from ``dataset`` (a
    :class:`~retrieval_lab.errors.DataError` naming the file if it was made from another one)."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise DataError(f"{path}: no saved training set")
    manifest = json.loads(path.read_text())
    if manifest["dataset"] != dataset.name:
        raise DataError(f"{path}: made from dataset {manifest['dataset']!r}, not {dataset.name!r}")
    split, template = manifest["split"], manifest["doc_template"]
    held = manifest["held_out"]
    held_out = None
    if held:  # the query texts as trained on (ANCE-PRF expands them); a list of ids in older files
        held_out = held_out_slice(dataset, list(held["queries"]), dataset.qrels[split], template, held["corpus"])
        if isinstance(held["queries"], dict):
            held_out = dataclasses.replace(held_out, queries=held["queries"])
    embeddings = _read_embeddings(directory / TEACHER_EMBEDDINGS)
    in_batch = None
    if "in_batch_queries" in embeddings:
        in_batch = InBatchTeacher(embeddings["in_batch_queries"], embeddings["in_batch_documents"])
    negatives_path, scores_path = directory / NEGATIVES, directory / TEACHER_SCORES
    return TrainingSet(
        dataset, split, template, manifest["queries"],
        pairs=tuple(Pair(q, d) for q, d in manifest["pairs"]),
        positives={q: frozenset(docs) for q, docs in manifest["positives"].items()},
        held_out=held_out,
        negatives=read_negatives(negatives_path, dataset.corpus) if negatives_path.is_file() else {},
        negatives_per_pair=manifest["negatives_per_pair"], topped_up=manifest["topped_up"],
        teacher_scores=read_scores(scores_path) if scores_path.is_file() else None,
        teacher_query=embeddings.get("teacher_query"),
        in_batch_teacher=in_batch,
    )


def _read_embeddings(path: Path) -> dict[str, dict[str, np.ndarray]]:
    if not path.is_file():
        return {}
    with np.load(path) as saved:
        return {name: dict(zip(saved[f"{name}_ids"].tolist(), saved[name]))
                for name in ("teacher_query", "in_batch_queries", "in_batch_documents") if name in saved}
