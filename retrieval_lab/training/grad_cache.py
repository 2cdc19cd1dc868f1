"""GradCache (Gao et al., 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup"): the gradient of a contrastive loss over a large batch in the memory of one chunk.

A contrastive loss couples every query of a batch with every document, so the batch cannot simply
be split into accumulation steps: the negatives of one part are the documents of the others. The
loss is, however, a function of the embeddings alone. GradCache therefore

1. encodes the batch chunk by chunk without a graph, keeping only the embeddings and the random
   state each chunk's forward started from;
2. computes the loss of the whole batch (its documents gathered across ranks, as without
   GradCache) and its gradient with respect to the embeddings, once;
3. encodes each chunk again, replaying its random state so that dropout draws the same masks,
   and backpropagates the cached embedding gradient through it (``emb · g`` has gradient ``g``).

The parameter gradients are those of one backward through the whole batch. Under DDP every chunk
but the last accumulates locally (``no_sync``), and the last backward all-reduces the sum: one
gradient all-reduce per step, not per chunk.
"""

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
from omegaconf import DictConfig, OmegaConf

from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.objectives.base import Objective
from retrieval_lab.objectives.inputs import LossInputs

# The config key, under ``objective``: objective.grad_cache.chunk_size.
CONFIG_KEY = "grad_cache"


@dataclass(frozen=True)
class RngState:
    """The CPU generator's state and, for a CUDA model, its device's: what a forward's dropout
    draws from."""

    cpu: torch.Tensor
    cuda: torch.Tensor | None
    device: torch.device

    @classmethod
    def capture(cls, device: torch.device) -> "RngState":
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return cls(torch.get_rng_state(), cuda, device)

    @contextlib.contextmanager
    def replayed(self) -> Iterator[None]:
        """Runs the block from this state and leaves the generators where they were before it."""
        devices = [self.device] if self.cuda is not None else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, self.device)
            yield


@dataclass(eq=False)  # compared by identity
class _Chunk:
    side: str
    features: dict[str, torch.Tensor]
    rng: RngState
    grad: torch.Tensor | None = None  # d loss / d its embeddings, once the loss is computed


@dataclass
class CachedStep:
    """A step after GradCache's first two passes: the batch's loss (detached) and the chunks
    whose embedding gradients are cached, ready for :meth:`GradCache.backward`."""

    loss: torch.Tensor
    chunks: list[_Chunk]


class GradCache:
    """Computes a training step's loss and parameter gradients chunk by chunk (see the module
    docstring). ``chunk_size``: the rows of queries, and of documents, encoded with a graph at a
    time; peak activation memory is that of one chunk (two at the last backward) instead of the
    batch's. ``replay_rng=False`` re-encodes with fresh dropout, which makes the gradient that of
    another forward than the loss's (only for tests that show why replaying matters)."""

    def __init__(self, chunk_size: int, replay_rng: bool = True) -> None:
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.chunk_size = chunk_size
        self.replay_rng = replay_rng

    @classmethod
    def from_config(cls, objective: Any) -> "GradCache | None":
        """The objective config's ``grad_cache: {chunk_size: N}``; None where it is absent or
        ``chunk_size`` is null (off)."""
        node = objective.get(CONFIG_KEY) if objective is not None else None
        if node is None or node.get("chunk_size") is None:
            return None
        return cls(node["chunk_size"])

    def forward(self, model: BiEncoder, objective: Objective, batch: dict,
                inputs: Callable[[torch.Tensor, torch.Tensor | None], LossInputs]) -> CachedStep:
        """Passes 1 and 2: the embeddings without a graph, then the loss of ``objective`` on
        ``inputs(query, docs)`` (the step's :class:`LossInputs` built from those embeddings, its
        documents gathered across ranks where the step gathers) and its gradient with respect to
        this rank's embeddings."""
        if any(p.requires_grad for p in objective.parameters()):
            raise ValueError("GradCache needs an objective without trainable parameters: its loss "
                             "is differentiated with respect to the embeddings alone")
        device = next(model.parameters()).device
        chunks, embeddings = [], {}
        for side in ("query", "doc"):
            if side not in batch:  # a query-only batch (QueryDistillationDataModule)
                continue
            parts = []
            for features in _split(batch[side], self.chunk_size):
                chunk = _Chunk(side, features, RngState.capture(device))
                with torch.no_grad():
                    parts.append(model(features, side))
                chunks.append(chunk)
            embeddings[side] = torch.cat(parts).requires_grad_()
        loss = objective.compute(inputs(embeddings["query"], embeddings.get("doc")))
        leaves = list(embeddings.values())
        grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        for side, grad in zip(embeddings, grads):
            own = [c for c in chunks if c.side == side]
            pieces = (grad if grad is not None else torch.zeros_like(embeddings[side])).split(
                [len(c.features["input_ids"]) for c in own])
            for chunk, piece in zip(own, pieces):
                chunk.grad = piece
        return CachedStep(loss.detach(), chunks)

    def backward(self, model: BiEncoder, step: CachedStep, backward: Callable[[torch.Tensor], None] | None = None,
                 no_sync: Callable[[], ContextManager] = contextlib.nullcontext) -> None:
        """Pass 3: each chunk encoded again from its random state, its cached gradient sent back
        through it, accumulating into the parameters' ``.grad``. ``backward`` runs a backward
        from a scalar (Lightning's ``manual_backward``, which applies loss scaling and DDP's
        bookkeeping; default ``Tensor.backward``); every chunk but the last of each side runs
        under ``no_sync()`` (DDP's), and the last query and document chunks run in one backward
        that synchronizes the accumulated gradients."""
        backward = backward or torch.Tensor.backward
        trained = [c for c in step.chunks if _trains(model, c.side)]
        last = {c.side: c for c in trained}  # each side's last chunk
        final = [c for c in trained if last[c.side] is c]
        with no_sync():
            for chunk in trained:
                if chunk not in final:
                    backward(self._surrogate(model, [chunk]))
        if final:
            backward(self._surrogate(model, final))

    def _surrogate(self, model: BiEncoder, chunks: list[_Chunk]) -> torch.Tensor:
        """A scalar whose gradient with respect to each chunk's embeddings is its cached gradient."""
        total = None
        for chunk in chunks:
            with chunk.rng.replayed() if self.replay_rng else contextlib.nullcontext():
                embeddings = model(chunk.features, chunk.side)
            term = (embeddings * chunk.grad.to(embeddings.dtype)).sum()
            total = term if total is None else total + term
        return total


def loss_config(objective: DictConfig) -> dict[str, Any]:
    """The objective's config without ``grad_cache`` (the step's setting, not the loss's): what
    builds the loss."""
    node = OmegaConf.to_container(objective, resolve=True)
    node.pop(CONFIG_KEY, None)
    return node


def _split(features: dict[str, torch.Tensor], size: int) -> list[dict[str, torch.Tensor]]:
    """The tokenized batch's rows in chunks of ``size`` (every field split alike; the padding
    stays the batch's, so a chunk encodes exactly as its rows do in the whole batch)."""
    rows = len(features["input_ids"])
    return [{key: value[start:start + size] for key, value in features.items()} for start in range(0, rows, size)]


def _trains(model: BiEncoder, side: str) -> bool:
    """Whether the tower that encodes ``side`` has parameters to train (a frozen document tower
    needs no second pass)."""
    return any(p.requires_grad for p in model.tower(side).parameters())
