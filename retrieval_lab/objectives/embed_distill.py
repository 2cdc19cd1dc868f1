"""Query-tower embedding distillation (ScalingNote, Huang et al., 2024, "ScalingNote: Scaling up
Retrievers with Large Language Models for Real-World Dense Retrieval"): a small query encoder is
trained to reproduce a frozen teacher's query embeddings, so it can search the teacher's document
index unchanged."""

import torch
import torch.nn.functional as F

from retrieval_lab.objectives.base import Need, Objective
from retrieval_lab.objectives.inputs import LossInputs


class EmbeddingDistillation(Objective):
    r"""

    .. math::
        \mathcal{L} = \frac{w_{mse}}{B} \sum_i \lVert q^s_i - q^t_i \rVert^2
            + \frac{w_{cos}}{B} \sum_i \big(1 - \cos(q^s_i, q^t_i)\big)

    The MSE term fixes the embeddings' scale as well as direction, which inner-product search
    against the teacher's index needs; the cosine term is scale-free.
    """

    needs = frozenset({Need.TEACHER_QUERY})
    reads_documents = False  # it trains on queries alone (QueryDistillationDataModule)

    def __init__(self, mse_weight: float = 1.0, cosine_weight: float = 1.0) -> None:
        super().__init__()
        if mse_weight < 0 or cosine_weight < 0 or mse_weight + cosine_weight == 0:
            raise ValueError(f"weights must be >= 0 and not both 0, got mse {mse_weight}, cosine {cosine_weight}")
        self.mse_weight = mse_weight
        self.cosine_weight = cosine_weight

    def compute(self, inputs: LossInputs) -> torch.Tensor:
        return self(inputs.require("query", "the student's query embeddings"),
                    inputs.require("teacher_query", "a bi-encoder teacher's query embeddings"))

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """student, teacher: [B, dim] query embeddings (the teacher's without gradient)."""
        teacher = teacher.detach().to(student.dtype)
        mse = ((student - teacher) ** 2).sum(dim=-1).mean()
        cosine = (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()
        return self.mse_weight * mse + self.cosine_weight * cosine
