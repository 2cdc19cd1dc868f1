"""Token-to-sentence pooling over a padded batch of hidden states."""

from typing import Literal

import torch

Pooling = Literal["mean", "cls", "last"]


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: Pooling) -> torch.Tensor:
    """Pool ``hidden`` [batch, seq, dim] into [batch, dim] using ``attention_mask`` [batch, seq].

    ``last`` takes the last non-padding token, so it is correct for left and right padding alike.
    """
    if mode == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "last":
        seq_len = attention_mask.shape[1]
        positions = torch.arange(seq_len, device=attention_mask.device).expand_as(attention_mask)
        last = (positions * attention_mask.long()).argmax(dim=1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"unknown pooling {mode!r}: expected mean, cls or last")
