"""What identifies a model's outputs, for cache keys: every weight, the tokenizer, the settings."""

import hashlib
import json
from typing import Any

import torch
from torch import nn


def module_fingerprint(module: nn.Module, tokenizer: Any, settings: dict[str, Any]) -> str:
    """sha256 of ``settings`` (JSON), the tokenizer and every tensor of ``module``'s state."""
    digest = hashlib.sha256()
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(tokenizer_fingerprint(tokenizer).encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """The tokenizer's vocabulary and pipeline, without the truncation/padding state that a fast
    tokenizer's backend carries over from its last call."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return json.dumps(tokenizer.get_vocab(), sort_keys=True) + type(tokenizer).__name__
    spec = json.loads(backend.to_str())
    spec.pop("truncation", None)
    spec.pop("padding", None)
    return json.dumps(spec, sort_keys=True)
