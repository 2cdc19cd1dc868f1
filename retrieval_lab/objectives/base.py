"""What every objective is: a module that computes a scalar loss from a training step's
:class:`LossInputs`, and says on its class what the run must provide for it (:class:`Need`) and
whether it reads documents at all. Config validation, the teach stage and the choice of data
module read these declarations before anything is built or trained."""

import abc
import enum
from typing import ClassVar

import torch
from torch import nn

from retrieval_lab.objectives.inputs import LossInputs


class Need(str, enum.Enum):
    """What an objective reads that only a teacher can provide; the teach stage gives it, and
    the :class:`LossInputs` field of the same name carries it to the objective.

    A ``str`` enum: a member equals, hashes and sorts as its value (``Need.TEACHER_PAIRS ==
    "teacher_pairs"``, ``"teacher_pairs" in needs``), and prints and serializes as it too, so
    messages and run records listing needs read ``['teacher_pairs']``.
    """

    TEACHER_PAIRS = "teacher_pairs"
    """[B, 1 + k] a teacher's scores of each query's positive and its own hard negatives (needs a miner)."""
    TEACHER_QUERY = "teacher_query"
    """[B, dim] a frozen bi-encoder teacher's query embeddings."""
    TEACHER_BATCH = "teacher_batch"
    """[B, N] an in-batch teacher's scores of every query against every document column of the batch."""

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return repr(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Objective(nn.Module, abc.ABC):
    """A training loss: :meth:`compute` maps one step's :class:`LossInputs` to a scalar.

    The training modules call ``objective.compute(inputs)`` (never the module itself), so any
    objective can be a term of a :class:`~retrieval_lab.objectives.WeightedSum`. A subclass may
    keep a ``forward`` over plain tensors for direct use; :meth:`compute` is its step-level API.

    Attributes:
        needs: what the teach stage must provide (:class:`Need` members), read from the class by
            config validation before anything is built; empty for a loss on labels alone.
        reads_documents: False for an objective that reads query embeddings only: the run then
            trains on queries alone (QueryDistillationDataModule), with no documents encoded
            (``LossInputs.docs`` is None).
    """

    needs: ClassVar[frozenset[Need]] = frozenset()
    reads_documents: ClassVar[bool] = True

    @abc.abstractmethod
    def compute(self, inputs: LossInputs) -> torch.Tensor:
        """The scalar loss of one training step; :class:`~retrieval_lab.objectives.MissingInput`
        where ``inputs`` lacks something it reads."""
