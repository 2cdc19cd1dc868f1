"""Listwise KL distillation (RocketQAv2, Ren et al., 2021; the listwise loss of Izacard & Grave and
of most cross-encoder-to-bi-encoder recipes)."""

import torch
import torch.nn.functional as F

from retrieval_lab.config.rules import Param, positive
from retrieval_lab.objectives.base import Need, Objective
from retrieval_lab.objectives.inputs import LossInputs

# The student's and the teacher's temperatures divide their scores.
TEMPERATURE_RULES = (Param("student_temperature", positive), Param("teacher_temperature", positive))


class ListwiseKL(Objective):
    r"""KL divergence from the teacher's to the student's distribution over each query's candidates:

    .. math::
        \mathcal{L} = \frac{1}{B} \sum_i \sum_j p^t_{ij} \left(\log p^t_{ij} - \log p^s_{ij}\right),
        \quad p^s_i = \mathrm{softmax}(s_i / \tau_s), \quad p^t_i = \mathrm{softmax}(t_i / \tau_t)

    with separate student and teacher temperatures (a cross-encoder's logits and a bi-encoder's
    cosines live on different scales). ``mask`` [B, n] (True = not a candidate) leaves columns out of
    both distributions.
    """

    rules = TEMPERATURE_RULES

    needs = frozenset({Need.TEACHER_PAIRS})

    def __init__(self, student_temperature: float = 1.0, teacher_temperature: float = 1.0) -> None:
        super().__init__()
        if student_temperature <= 0 or teacher_temperature <= 0:
            raise ValueError(f"temperatures must be positive, got student {student_temperature}, "
                             f"teacher {teacher_temperature}")
        self.student_temperature = student_temperature
        self.teacher_temperature = teacher_temperature

    def compute(self, inputs: LossInputs) -> torch.Tensor:
        """Over each query's positive and own hard negatives."""
        return self(inputs.student_pairs(), inputs.require("teacher_pairs", "a teacher (teacher=...)"))

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if student.shape != teacher.shape:
            raise ValueError(f"student and teacher scores differ in shape: {list(student.shape)} vs {list(teacher.shape)}")
        student = student / self.student_temperature
        teacher = teacher.to(student.dtype) / self.teacher_temperature
        if mask is not None:
            student = student.masked_fill(mask, float("-inf"))
            teacher = teacher.masked_fill(mask, float("-inf"))
        log_student = F.log_softmax(student, dim=-1)
        log_teacher = F.log_softmax(teacher, dim=-1)
        # masked columns: p_t = 0, and 0 * (-inf - -inf) must count as 0
        terms = log_teacher.exp() * (log_teacher - log_student)
        return torch.nan_to_num(terms, nan=0.0).sum(dim=-1).mean()
