"""TAS-B's dual supervision (Hofstätter et al., 2021, "Efficiently Teaching an Effective Dense
Retriever with Balanced Topic Aware Sampling"): one teacher scores each query's own (positive,
negative) pairs, a second, cheaper one scores every query against every document of the batch."""

from typing import Literal

import torch

from retrieval_lab.objectives.base import Need, Objective
from retrieval_lab.objectives.inputs import LossInputs
from retrieval_lab.objectives.kl_listwise import TEMPERATURE_RULES, ListwiseKL
from retrieval_lab.objectives.margin_mse import MarginMSE


class DualTeacher(Objective):
    r"""

    .. math::
        \mathcal{L} = \mathcal{L}_{pair}\big(s^{pair}, t^{pair}\big)
            + \alpha \, \mathcal{L}_{in\text{-}batch}\big(s^{batch}, t^{batch}\big)

    :math:`\mathcal{L}_{pair}` is Margin-MSE over each query's positive and hard negatives (the
    paper's BERT-CAT teacher). The in-batch term covers query i against all N documents of the
    batch, its target column ``targets[i]`` the positive (the paper's ColBERT teacher), either as
    Margin-MSE over every (target, other column) margin (``in_batch="margin_mse"``, the paper's
    choice) or as listwise KL (``"kl"``). ``mask`` [B, N] removes columns (other labelled positives
    of the query) from the in-batch term. ``pairwise_scale`` multiplies the student's scores in the
    pairwise term only (see :class:`MarginMSE`): the pairwise teacher is a cross-encoder, while the
    in-batch teacher is a bi-encoder on the student's own scale.
    """

    rules = TEMPERATURE_RULES

    needs = frozenset({Need.TEACHER_PAIRS, Need.TEACHER_BATCH})

    def __init__(self, in_batch_weight: float = 1.0, in_batch: Literal["margin_mse", "kl"] = "margin_mse",
                 student_temperature: float = 1.0, teacher_temperature: float = 1.0,
                 pairwise_scale: float = 1.0) -> None:
        super().__init__()
        if in_batch not in ("margin_mse", "kl"):
            raise ValueError(f"in_batch must be 'margin_mse' or 'kl', got {in_batch!r}")
        self.in_batch_weight = in_batch_weight
        self.in_batch = in_batch
        self.pairwise = MarginMSE(pairwise_scale)
        self.kl = ListwiseKL(student_temperature, teacher_temperature)

    def compute(self, inputs: LossInputs) -> torch.Tensor:
        return self(inputs.student_pairs(), inputs.require("teacher_pairs", "a pairwise teacher (teacher=...)"),
                    inputs.scores(), inputs.require("teacher_batch", "an in-batch teacher (teacher=ensemble)"),
                    inputs.require("targets", "each query's positive column"), inputs.mask)

    def forward(self, student_pairs: torch.Tensor, teacher_pairs: torch.Tensor, student_batch: torch.Tensor,
                teacher_batch: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        pairwise = self.pairwise(student_pairs, teacher_pairs)
        if self.in_batch == "kl":
            return pairwise + self.in_batch_weight * self.kl(student_batch, teacher_batch, mask)
        rows = torch.arange(len(targets), device=targets.device)
        keep = torch.ones_like(student_batch, dtype=torch.bool)
        keep[rows, targets] = False
        if mask is not None:
            keep &= ~mask
        student_margin = student_batch[rows, targets][:, None] - student_batch
        teacher_margin = (teacher_batch[rows, targets][:, None] - teacher_batch).to(student_batch.dtype)
        in_batch = ((student_margin - teacher_margin) ** 2)[keep].mean()
        return pairwise + self.in_batch_weight * in_batch
