"""What a training step hands every objective, so that losses combine freely (a weighted sum of
named terms) whatever each one reads."""

from dataclasses import dataclass

import torch


class MissingInput(ValueError):
    """An objective needs something the run does not provide (a teacher, hard negatives)."""


@dataclass
class LossInputs:
    """A bi-encoder step fills the embedding fields, a cross-encoder step ``pair_logits`` alone;
    an objective reads what it needs through :meth:`require`, so one given the wrong kind of step
    fails with :class:`MissingInput` naming the field.

    Attributes:
        query: [B, dim] the student's query embeddings (this process's queries), or None (a
            cross-encoder step).
        docs: [N, dim] the batch's document embeddings (every process's, when gathered); None
            when the objective reads no documents (``reads_documents = False``) or for a
            cross-encoder step.
        targets: [B] each query's positive column in ``docs``, or None (a cross-encoder step).
        mask: [B, N] True where a column is another labelled positive of the query, or None.
        pair_columns: [B, 1 + k] each query's positive column, then its own hard negatives'.
        teacher_pairs: [B, 1 + k] the teacher's scores of those pairs, or None.
        teacher_batch: [B, N] the teacher's scores of every query against every column, or None.
        teacher_query: [B, dim] a frozen teacher's query embeddings, or None.
        pair_logits: [B, group] a cross-encoder's logits of each query's (query, document)
            pairs, its positive in column 0 and then its own mined negatives; None for a
            bi-encoder step.
    """

    query: torch.Tensor | None = None
    docs: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    pair_columns: torch.Tensor | None = None
    teacher_pairs: torch.Tensor | None = None
    teacher_batch: torch.Tensor | None = None
    teacher_query: torch.Tensor | None = None
    pair_logits: torch.Tensor | None = None

    def scores(self) -> torch.Tensor:
        """[B, N] the student's scores of every query against every column."""
        query = self.require("query", "the student's query embeddings")
        return query @ self.require("docs", "the batch's document embeddings").T

    def student_pairs(self) -> torch.Tensor:
        """[B, 1 + k] the student's scores of each query's positive and own negatives."""
        columns = self.require("pair_columns", "hard negatives (a miner)")
        return torch.gather(self.scores(), 1, columns)

    def require(self, name: str, what: str) -> torch.Tensor:
        value = getattr(self, name)
        if value is None:
            raise MissingInput(f"this objective needs {what}, which the run does not provide ({name})")
        return value
