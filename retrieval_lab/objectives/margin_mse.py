"""Margin-MSE (Hofstätter et al., 2020, "Improving Efficient Neural Ranking Models with
Cross-Architecture Knowledge Distillation")."""

import torch

from retrieval_lab.objectives.base import Need, Objective
from retrieval_lab.objectives.inputs import LossInputs


class MarginMSE(Objective):
    r"""For each query, its positive (column 0) and each of its negatives (columns 1..k):

    .. math::
        \mathcal{L} = \frac{1}{Bk} \sum_i \sum_{j=1}^{k}
            \big( (s_{i0} - s_{ij}) - (t_{i0} - t_{ij}) \big)^2

    with :math:`s` the student's scores times ``student_scale`` and :math:`t` the teacher's. Only
    margins are matched, so a teacher whose logits sit at another offset teaches a dot-product
    student as the paper does. A cosine student's margins cannot exceed 2, while a cross-encoder's
    reach 10 or more: ``student_scale`` (20 = InfoNCE's 1/0.05) lets the two meet.
    """

    needs = frozenset({Need.TEACHER_PAIRS})

    def __init__(self, student_scale: float = 1.0) -> None:
        super().__init__()
        if student_scale <= 0:
            raise ValueError(f"student_scale must be positive, got {student_scale}")
        self.student_scale = student_scale

    def compute(self, inputs: LossInputs) -> torch.Tensor:
        return self(inputs.student_pairs(), inputs.require("teacher_pairs", "a teacher (teacher=...)"))

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """student, teacher: [B, 1 + k] scores, the positive in column 0."""
        if student.shape != teacher.shape or student.shape[-1] < 2:
            raise ValueError(f"student and teacher scores must both be [B, 1 + k >= 2], got "
                             f"{list(student.shape)} and {list(teacher.shape)}")
        student = student * self.student_scale
        student_margin = student[:, :1] - student[:, 1:]
        teacher_margin = teacher[:, :1] - teacher[:, 1:]
        return ((student_margin - teacher_margin.to(student.dtype)) ** 2).mean()
