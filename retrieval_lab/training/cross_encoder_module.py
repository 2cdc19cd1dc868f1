"""Training a cross-encoder: the bi-encoder module's optimizer, schedule and train mode, with a
step that scores each (query, positive, negatives) group jointly."""

import torch

from retrieval_lab.training.module import RetrieverModule


class CrossEncoderModule(RetrieverModule):
    """``objective`` maps logits [B, 1 + k] (the positive in column 0) to a loss."""

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self.model(batch["pairs"]).view(-1, int(batch["group"]))
        loss = self.objective(logits)
        self.log("train/loss", loss, prog_bar=True, batch_size=logits.shape[0])
        return loss
