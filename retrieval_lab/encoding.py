"""Batch encoding of many texts with a bi-encoder, in length-sorted batches."""

import numpy as np
import torch
from tqdm.auto import tqdm

from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.models.tokenization import Side
from retrieval_lab.training.precision import BF16


@torch.inference_mode()
def encode_texts(
    model: BiEncoder,
    texts: list[str],
    side: Side,
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """Embed ``texts`` as a float32 array [len(texts), dim], rows in input order.

    Texts are sorted by tokenized length, longest first, so each batch pads to a similar length
    and a batch that does not fit in memory fails at once (not worth a tokenization pass when
    there is one batch, or one text per batch); the model's train/eval mode is restored. The
    forward runs in ``model.encode_precision`` (bf16 autocast, or fp32 whatever autocast is
    active around the call, e.g. Lightning's during training).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    if 1 < batch_size < len(texts):
        order = np.argsort(model.tokenization.lengths(texts, side), kind="stable")[::-1]
    else:
        order = np.arange(len(texts))
    out = np.empty((len(texts), model.dim), dtype=np.float32)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=model.encode_precision == BF16)
    try:
        for start in tqdm(range(0, len(texts), batch_size), desc=f"encode {side}", disable=not progress):
            idx = order[start : start + batch_size]
            features = model.tokenization([texts[i] for i in idx], side).to(device)
            with autocast:
                out[idx] = model(features, side).float().cpu().numpy()
    finally:
        model.train(was_training)
    return out
