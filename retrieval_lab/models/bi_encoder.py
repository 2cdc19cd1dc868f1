"""A bi-encoder over any Hugging Face encoder, with its whole encoding contract in the config.

Prefixes, per-side max lengths, pooling and normalization decide what a score means; they are
constructor arguments (so they sit in the config and in every run's record), never hidden defaults.
"""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, BatchEncoding

from retrieval_lab.config.model_source import encoder_hidden_size, model_source_problem
from retrieval_lab.config.rules import Param, at_least
from retrieval_lab.models.base import Model
from retrieval_lab.models.loading import resolve_model_path
from retrieval_lab.models.pooling import Pooling, pool
from retrieval_lab.models.tokenization import Side, Tokenization
from retrieval_lab.training.precision import BF16, ENCODE_PRECISIONS, FP32


@dataclass(frozen=True)
class TowerOptions:
    """One tower of a two-tower model: where its weights come from (default: the model's
    ``name_or_path``), how many of its first transformer layers it keeps (a smaller student), and
    whether it is frozen (a query tower trained alone against a fixed document tower and index)."""

    path: str | None = None
    num_layers: int | None = None
    frozen: bool = False


class BiEncoder(Model):
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
        query / doc: :class:`TowerOptions` of each tower (needs ``shared=False``). A two-tower
            export (``query/`` and ``doc/``) loads as two towers. Both towers use the tokenizer of
            ``name_or_path``.
        truncate_dim: keep the first ``truncate_dim`` coordinates of every embedding (re-normalized
            when ``normalize``): a smaller index from the same model, as Matryoshka training intends.
    """

    # A path that does not exist, or a hub id that cannot be had, fails before any work (not
    # after a minute of download retries); the sizes must be ones the encoder has.
    rules = (
        Param("name_or_path", model_source_problem), Param("query.path", model_source_problem),
        Param("doc.path", model_source_problem), Param("query_max_length", at_least(1)),
        Param("doc_max_length", at_least(1)), Param("truncate_dim", lambda dim, node, run: _truncate_problem(dim, node)),
    )

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
        query: dict[str, Any] | None = None,
        doc: dict[str, Any] | None = None,
        truncate_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.name_or_path = name_or_path
        self.pooling = pooling
        self.normalize = normalize
        root = Path(resolve_model_path(name_or_path))
        two_tower_export = all((root / side / "config.json").is_file() for side in ("query", "doc"))
        self.options = {"query": TowerOptions(**(query or {})), "doc": TowerOptions(**(doc or {}))}
        if shared and (two_tower_export or any(o != TowerOptions() for o in self.options.values())):
            if not two_tower_export:
                raise ValueError("per-tower options (model.query, model.doc) need two towers: set model.shared=false")
            shared = False
        self.shared = shared
        self.tokenization = Tokenization(
            AutoTokenizer.from_pretrained(str(root / "query" if two_tower_export else root)),
            prefixes={"query": query_prefix, "doc": doc_prefix},
            max_lengths={"query": query_max_length, "doc": doc_max_length},
        )
        towers = {}
        for side in ("query",) if shared else ("query", "doc"):
            options = self.options[side]
            if options.path:
                path = resolve_model_path(options.path)
            else:
                path = str(root / side) if two_tower_export else str(root)
            towers[side] = self._load_encoder(path, random_init, config_overrides or {})
            if options.num_layers:
                _keep_first_layers(towers[side], options.num_layers, side)
            if options.frozen:
                towers[side].requires_grad_(False)
        self.towers = nn.ModuleDict(towers)
        if truncate_dim is not None and not 1 <= truncate_dim <= self.hidden_size:
            raise ValueError(f"model.truncate_dim={truncate_dim}: the embeddings have {self.hidden_size} dimensions")
        self.truncate_dim = truncate_dim
        # The precision encode_texts runs this model in: a run setting (encode_precision), chosen
        # by the pipeline for the hardware, not a property of the weights or the export.
        self.encode_precision = FP32

    def encode_in(self, precision: str) -> None:
        """Encode in ``precision`` (``32-true`` or ``bf16-mixed``) from now on."""
        if precision not in ENCODE_PRECISIONS:
            raise ValueError(f"encode precision {precision!r}: use {' or '.join(ENCODE_PRECISIONS)}")
        self.encode_precision = precision

    def train(self, mode: bool = True) -> "BiEncoder":
        """Frozen towers stay in eval mode (no dropout): they must give the embeddings they index."""
        super().train(mode)
        for side, tower in self.towers.items():
            if self.options[side].frozen:
                tower.eval()
        return self

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
    def hidden_size(self) -> int:
        """The encoder's output size (what pooling gives)."""
        return self.tower("query").config.hidden_size

    @property
    def dim(self) -> int:
        """The embedding's size: ``truncate_dim`` where set."""
        return self.truncate_dim or self.hidden_size

    def forward(self, features: BatchEncoding | dict[str, torch.Tensor], side: Side) -> torch.Tensor:
        hidden = self.tower(side)(**features).last_hidden_state
        embeddings = pool(hidden, features["attention_mask"], self.pooling)
        if self.truncate_dim is not None:
            embeddings = embeddings[:, : self.truncate_dim]
        return F.normalize(embeddings, dim=-1) if self.normalize else embeddings

    indexable = True

    def export(self, out_dir: str | Path) -> Path:
        """The sentence-transformers export (:func:`~retrieval_lab.models.export.export_model`)."""
        from retrieval_lab.models.export import export_model  # it imports this module

        return export_model(self, out_dir)

    def encoding_contract(self) -> dict[str, Any]:
        """Everything besides the weights that decides an embedding; recorded with every run."""
        return {
            "name_or_path": self.name_or_path,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "prefixes": dict(self.tokenization.prefixes),
            "max_lengths": dict(self.tokenization.max_lengths),
            "shared": self.shared,
            **({} if self.shared else {"towers": {side: asdict(o) for side, o in self.options.items()}}),
            **({} if self.truncate_dim is None else {"truncate_dim": self.truncate_dim}),
            # Only where it is not fp32, so fp32 embeddings keep the keys they had before it existed.
            **({} if self.encode_precision == FP32 else {"encode_precision": self.encode_precision}),
        }


def _keep_first_layers(encoder: nn.Module, count: int, side: str) -> None:
    """Truncate a BERT-style encoder (``encoder.layer``) to its first ``count`` layers, and its
    config with it, so the export reloads as the smaller model."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"model.{side}.num_layers: {type(encoder).__name__} has no encoder.layer list to truncate")
    if not 1 <= count <= len(layers):
        raise ValueError(f"model.{side}.num_layers={count}: the encoder has {len(layers)} layers")
    encoder.encoder.layer = layers[:count]
    encoder.config.num_hidden_layers = count


def _truncate_problem(truncate_dim: int | None, model: dict[str, Any]) -> str | None:
    hidden = encoder_hidden_size(model)
    if truncate_dim is None or (truncate_dim >= 1 and (hidden is None or truncate_dim <= hidden)):
        return None
    return f"must be in [1, {hidden or 'the embedding size'}], got {truncate_dim}"
