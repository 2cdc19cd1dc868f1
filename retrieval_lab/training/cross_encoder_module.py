"""Training a cross-encoder: the bi-encoder module's optimizer, schedule, train mode and logging,
with a step that scores each (query, positive, negatives) group jointly."""

import torch

from retrieval_lab.objectives.inputs import LossInputs
from retrieval_lab.training.module import RetrieverModule


class CrossEncoderModule(RetrieverModule):
    """``objective`` computes from ``LossInputs.pair_logits``, the logits [B, 1 + k] of each
    query's group (the positive in column 0): ce_listwise, ce_bce, or a weighted sum of them
    (ce_listwise_bce), each term logged as ``train/<name>``."""

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self.model(batch["pairs"]).view(-1, int(batch["group"]))
        loss = self.objective.compute(LossInputs(pair_logits=logits))
        self.report_loss(loss, logits.shape[0])
        return loss
