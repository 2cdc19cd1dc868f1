"""The model protocol: what the stages ask of a model, a bi-encoder or a cross-encoder."""

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from torch import nn


class Model(nn.Module, ABC):
    """``indexable``: it embeds a text on its own, so a corpus can be encoded once and indexed (a
    bi-encoder); a model that reads query and document together (a cross-encoder) trains and
    re-ranks, but indexes nothing (config validation refuses the index stage for it)."""

    indexable: ClassVar[bool]

    @abstractmethod
    def encoding_contract(self) -> dict[str, Any]:
        """How text becomes what is scored (``encoding.json``; part of cache keys)."""

    @abstractmethod
    def export(self, out_dir: str | Path) -> Path:
        """Writes the trained model where its library loads it from; returns the directory."""
