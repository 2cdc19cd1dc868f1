"""Losses of a cross-encoder trained on (query, positive, mined negatives) groups: logits [B, 1 + k]
(``LossInputs.pair_logits``), the positive in column 0."""

import torch
import torch.nn.functional as F

from retrieval_lab.objectives.base import Objective
from retrieval_lab.objectives.inputs import LossInputs


def _pair_logits(inputs: LossInputs) -> torch.Tensor:
    return inputs.require("pair_logits", "a cross-encoder's logits of each query's group (model=cross_encoder)")


class PointwiseBCE(Objective):
    r"""Each pair on its own (monoBERT, Nogueira & Cho, 2019):

    .. math::
        \mathcal{L} = -\frac{1}{B(1+k)} \sum_{i,j} \big( y_{ij} \log \sigma(z_{ij})
            + (1 - y_{ij}) \log (1 - \sigma(z_{ij})) \big), \quad y_{i0} = 1, \; y_{ij>0} = 0
    """

    def compute(self, inputs: LossInputs) -> torch.Tensor:
        return self(_pair_logits(inputs))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        labels = torch.zeros_like(logits)
        labels[:, 0] = 1
        return F.binary_cross_entropy_with_logits(logits, labels)


class ListwiseCE(Objective):
    r"""The positive against its own negatives (localized contrastive estimation, Gao et al., 2021,
    "Rethink Training of BERT Rerankers in Multi-Stage Retrieval Pipeline"):

    .. math::
        \mathcal{L} = -\frac{1}{B} \sum_i \log \frac{\exp(z_{i0})}{\sum_{j=0}^{k} \exp(z_{ij})}
    """

    def compute(self, inputs: LossInputs) -> torch.Tensor:
        return self(_pair_logits(inputs))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
