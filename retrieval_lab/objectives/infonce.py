"""InfoNCE over in-batch negatives plus any hard negatives present in the batch."""

import torch
import torch.nn.functional as F

from retrieval_lab.config.rules import Param, positive
from retrieval_lab.objectives.base import Objective
from retrieval_lab.objectives.inputs import LossInputs


class InfoNCE(Objective):
    r"""Contrastive loss of DPR (Karpukhin et al., 2020, "Dense Passage Retrieval for Open-Domain
    Question Answering") and the InfoNCE of van den Oord et al. (2018).

    For query embeddings :math:`q_i` (B of them) and candidate document embeddings :math:`d_j`
    (N >= B of them: each query's positive at column ``targets[i]``, then every other positive and
    hard negative in the batch as negatives),

    .. math::
        \mathcal{L} = -\frac{1}{B} \sum_i \log
            \frac{\exp(s(q_i, d_{t_i}) / \tau)}{\sum_{j \notin M_i} \exp(s(q_i, d_j) / \tau)}

    with :math:`s` the inner product (cosine for normalized embeddings), :math:`\tau` the
    temperature, and :math:`M_i` the columns masked out for query i: other copies of its labelled
    positives, which would otherwise be punished as negatives. sentence-transformers'
    MultipleNegativesRankingLoss is this loss with scale 20, i.e. :math:`\tau = 0.05`.

    ``symmetric`` adds the document-to-query direction over the B positives (as in CLIP and
    several sentence-embedding recipes).
    """

    rules = (Param("temperature", positive),)

    def __init__(self, temperature: float = 0.05, symmetric: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.symmetric = symmetric

    def compute(self, inputs: LossInputs) -> torch.Tensor:
        return self(inputs.require("query", "the student's query embeddings"),
                    inputs.require("docs", "the batch's document embeddings"),
                    targets=inputs.require("targets", "each query's positive column"), mask=inputs.mask)

    def forward(
        self,
        query: torch.Tensor,
        docs: torch.Tensor,
        targets: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Args:
            query: [B, dim] query embeddings.
            docs: [N, dim] candidate embeddings; by default column i is query i's positive.
            targets: [B] column of each query's positive (default ``arange(B)``).
            mask: [B, N] bool, True where a column must not count as a negative for that query.
        """
        batch = query.shape[0]
        if targets is None:
            targets = torch.arange(batch, device=query.device)
        scores = query @ docs.T / self.temperature
        if mask is not None:
            scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
        loss = F.cross_entropy(scores, targets)
        if self.symmetric:
            positives = docs[targets]
            reverse = positives @ query.T / self.temperature
            if mask is not None:
                reverse = reverse.masked_fill(mask[:, targets].T, torch.finfo(scores.dtype).min)
            loss = (loss + F.cross_entropy(reverse, torch.arange(batch, device=query.device))) / 2
        return loss
