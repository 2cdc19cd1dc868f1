"""Losses of a cross-encoder trained on (query, positive, mined negatives) groups: logits [B, 1 + k],
the positive in column 0."""

import torch
import torch.nn.functional as F
from torch import nn


class PointwiseBCE(nn.Module):
    r"""Each pair on its own (monoBERT, Nogueira & Cho, 2019):

    .. math::
        \mathcal{L} = -\frac{1}{B(1+k)} \sum_{i,j} \big( y_{ij} \log \sigma(z_{ij})
            + (1 - y_{ij}) \log (1 - \sigma(z_{ij})) \big), \quad y_{i0} = 1, \; y_{ij>0} = 0
    """

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        labels = torch.zeros_like(logits)
        labels[:, 0] = 1
        return F.binary_cross_entropy_with_logits(logits, labels)


class ListwiseCE(nn.Module):
    r"""The positive against its own negatives (localized contrastive estimation, Gao et al., 2021,
    "Rethink Training of BERT Rerankers in Multi-Stage Retrieval Pipeline"):

    .. math::
        \mathcal{L} = -\frac{1}{B} \sum_i \log \frac{\exp(z_{i0})}{\sum_{j=0}^{k} \exp(z_{ij})}
    """

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
