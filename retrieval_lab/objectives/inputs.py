"""What a training step hands every objective, so that losses combine freely (a weighted sum of
named terms) whatever each one reads."""

from dataclasses import dataclass

import torch


class MissingInput(ValueError):
    """An objective needs something the run does not provide (a teacher, hard negatives)."""


@dataclass
class LossInputs:
    """
    Attributes:
        query: [B, dim] the student's query embeddings (this process's queries).
        docs: [N, dim] the batch's document embeddings (every process's, when gathered); None
            when the objective reads no documents (``reads_documents = False``).
        targets: [B] each query's positive column in ``docs``.
        mask: [B, N] True where a column is another labelled positive of the query, or None.
        pair_columns: [B, 1 + k] each query's positive column, then its own hard negatives'.
        teacher_pairs: [B, 1 + k] the teacher's scores of those pairs, or None.
        teacher_batch: [B, N] the teacher's scores of every query against every column, or None.
        teacher_query: [B, dim] a frozen teacher's query embeddings, or None.
    """

    query: torch.Tensor
    docs: torch.Tensor | None
    targets: torch.Tensor
    mask: torch.Tensor | None = None
    pair_columns: torch.Tensor | None = None
    teacher_pairs: torch.Tensor | None = None
    teacher_batch: torch.Tensor | None = None
    teacher_query: torch.Tensor | None = None

    def scores(self) -> torch.Tensor:
        """[B, N] the student's scores of every query against every column."""
        return self.query @ self.require("docs", "the batch's document embeddings").T

    def student_pairs(self) -> torch.Tensor:
        """[B, 1 + k] the student's scores of each query's positive and own negatives."""
        columns = self.require("pair_columns", "hard negatives (a miner)")
        return torch.gather(self.scores(), 1, columns)

    def require(self, name: str, what: str) -> torch.Tensor:
        value = getattr(self, name)
        if value is None:
            raise MissingInput(f"this objective needs {what}, which the run does not provide ({name})")
        return value
