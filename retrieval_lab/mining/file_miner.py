"""Negatives from a user's file (:mod:`retrieval_lab.mining.negatives_file`), used as they are:
the selection controls do not apply."""

from pathlib import Path
from typing import Any

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.mining.miner import Miner
from retrieval_lab.mining.negatives_file import Negatives, read_negatives


class FileMiner(Miner):
    """Args: ``path`` of the negatives JSONL; ``per_pair``: how many of a query's negatives each
    training pair carries per batch."""

    name = "file"

    def __init__(self, path: str, per_pair: int = 1) -> None:
        if per_pair < 1:
            raise ValueError(f"per_pair must be >= 1, got {per_pair}")
        self.path = Path(path)
        self._per_pair = per_pair

    @property
    def per_pair(self) -> int:
        return self._per_pair

    def negatives(self, dataset: BeirDataset, split: str, doc_template: str,
                  run_model: Any = None) -> tuple[Negatives, dict[str, Any]]:
        negatives = read_negatives(self.path, dataset.corpus)
        return negatives, {"miner": self.name, "file": str(self.path), "queries": len(negatives)}
