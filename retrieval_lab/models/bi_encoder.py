"""A bi-encoder over any Hugging Face encoder, with its whole encoding contract in the config.

Prefixes, per-side max lengths, pooling and normalization decide what a score means; they are
constructor arguments (so they sit in the config and in every run's record), never hidden defaults.
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, BatchEncoding

from retrieval_lab.models.loading import resolve_model_path
from retrieval_lab.models.pooling import Pooling, pool
from retrieval_lab.models.tokenization import Side, Tokenization


class BiEncoder(nn.Module):
    """Encodes queries and documents into one vector space.

    Args:
        name_or_path: hub id, local directory, or ``pkg:<module>`` for weights shipped in a package.
        pooling: ``mean``, ``cls`` or ``last`` (last non-padding token).
        normalize: L2-normalize embeddings, so inner product is cosine similarity.
        query_prefix / doc_prefix: prepended to every text of that side (e.g. ``"query: "``).
        query_max_length / doc_max_length: truncation length in tokens, per side.
        shared: one encoder for both sides (siamese) or two separately trained towers.
        random_init: build the architecture from its config with random weights (tiny test models).
        config_overrides: values that replace the Hugging Face config's (e.g. a smaller hidden size).
    """

    def __init__(
        self,
        name_or_path: str,
        pooling: Pooling = "mean",
        normalize: bool = True,
        query_prefix: str = "",
        doc_prefix: str = "",
        query_max_length: int = 256,
        doc_max_length: int = 256,
        shared: bool = True,
        random_init: bool = False,
        config_overrides: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.name_or_path = name_or_path
        self.pooling = pooling
        self.normalize = normalize
        self.shared = shared
        path = resolve_model_path(name_or_path)
        self.tokenization = Tokenization(
            AutoTokenizer.from_pretrained(path),
            prefixes={"query": query_prefix, "doc": doc_prefix},
            max_lengths={"query": query_max_length, "doc": doc_max_length},
        )
        towers = {"query": self._load_encoder(path, random_init, config_overrides or {})}
        if not shared:
            towers["doc"] = self._load_encoder(path, random_init, config_overrides or {})
        self.towers = nn.ModuleDict(towers)

    @staticmethod
    def _load_encoder(path: str, random_init: bool, overrides: dict[str, Any]) -> nn.Module:
        if random_init:
            encoder = AutoModel.from_config(AutoConfig.from_pretrained(path, **overrides))
        else:
            encoder = AutoModel.from_pretrained(path, **overrides)
        if getattr(encoder, "pooler", None) is not None:
            # BERT-style pooler head: our pooling never uses it. Frozen, so DDP and the optimizer
            # skip it, while the export keeps the checkpoint's architecture.
            encoder.pooler.requires_grad_(False)
        return encoder

    def tower(self, side: Side) -> nn.Module:
        return self.towers["query" if self.shared else side]

    @property
    def dim(self) -> int:
        return self.tower("query").config.hidden_size

    def forward(self, features: BatchEncoding | dict[str, torch.Tensor], side: Side) -> torch.Tensor:
        hidden = self.tower(side)(**features).last_hidden_state
        embeddings = pool(hidden, features["attention_mask"], self.pooling)
        return F.normalize(embeddings, dim=-1) if self.normalize else embeddings

    def encoding_contract(self) -> dict[str, Any]:
        """Everything besides the weights that decides an embedding; recorded with every run."""
        return {
            "name_or_path": self.name_or_path,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "prefixes": dict(self.tokenization.prefixes),
            "max_lengths": dict(self.tokenization.max_lengths),
            "shared": self.shared,
        }
