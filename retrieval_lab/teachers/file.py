"""Scores brought by the user, for a teacher this framework cannot run (format: scores_file.py)."""

from pathlib import Path
from typing import Any

import numpy as np

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.errors import DataError
from retrieval_lab.provenance import file_sha256
from retrieval_lab.teachers.scores_file import read_scores
from retrieval_lab.teachers.teacher import PairIds, Teacher


class ScoresFileTeacher(Teacher):
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "file", "sha256": file_sha256(self.path)}

    def score(self, dataset: BeirDataset, pairs: PairIds, doc_template: str) -> np.ndarray:
        scores = read_scores(self.path, dataset.corpus)
        missing = [pair for pair in pairs if pair not in scores]
        if missing:
            raise DataError(f"{self.path}: no score for {len(missing)} pair(s) the training shows, "
                            f"e.g. (query, doc) {missing[0]}")
        return np.array([scores[pair] for pair in pairs], dtype=np.float32)
