"""Matryoshka InfoNCE: the contrastive loss on nested prefixes of the embedding, so that a
truncated embedding (``model.truncate_dim``) still retrieves well."""

import torch
import torch.nn.functional as F

from retrieval_lab.config.model_source import embedding_dim
from retrieval_lab.config.rules import Param, positive
from retrieval_lab.objectives.base import Objective
from retrieval_lab.objectives.infonce import InfoNCE
from retrieval_lab.objectives.inputs import LossInputs


class MatryoshkaInfoNCE(Objective):
    r"""Matryoshka Representation Learning (Kusupati et al., 2022) over InfoNCE:

    .. math::
        \mathcal{L} = \sum_{m \in M} c_m \, \mathcal{L}_{\mathrm{InfoNCE}}
            \big(\bar q_{1:m}, \bar d_{1:m}\big)

    where :math:`q_{1:m}` keeps the first :math:`m` coordinates of each query embedding (the
    same for documents), :math:`\bar x = x / \lVert x \rVert` when ``normalize`` (the truncated
    prefix of a unit vector is no longer one; cosine scores need it re-normalized, as
    sentence-transformers' MatryoshkaLoss does), and :math:`c_m` the weight of dimension
    :math:`m` (default 1 each). Each term is the masked InfoNCE of :class:`InfoNCE`, in-batch and
    hard negatives alike, with ``temperature``; :attr:`last_terms` keeps each dimension's value
    for logging (``train/dim_<m>``).
    """

    rules = (Param("temperature", positive), Param("dims", lambda dims, node, run: _dims_problem(dims, run)))

    def __init__(self, dims: list[int] = (384, 256, 128, 64), weights: list[float] | None = None,
                 temperature: float = 0.05, normalize: bool = True) -> None:
        super().__init__()
        dims = [int(d) for d in dims]
        if not dims or any(d < 1 for d in dims) or len(set(dims)) != len(dims):
            raise ValueError(f"dims must be distinct positive dimensions, got {dims}")
        weights = [1.0] * len(dims) if weights is None else [float(w) for w in weights]
        if len(weights) != len(dims) or any(w < 0 for w in weights):
            raise ValueError(f"weights must be {len(dims)} non-negative numbers, one per dimension, got {weights}")
        self.dims = dims
        self.weights = weights
        self.normalize = normalize
        self.infonce = InfoNCE(temperature)
        self.last_terms: dict[str, float] = {}

    def _prefix(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        if dim > x.shape[-1]:
            raise ValueError(f"Matryoshka dimension {dim} exceeds the embedding's {x.shape[-1]}")
        prefix = x[..., :dim]
        return F.normalize(prefix, dim=-1) if self.normalize else prefix

    def compute(self, inputs: LossInputs) -> torch.Tensor:
        query = inputs.require("query", "the student's query embeddings")
        docs = inputs.require("docs", "the batch's document embeddings")
        targets = inputs.require("targets", "each query's positive column")
        total = None
        for dim, weight in zip(self.dims, self.weights):
            value = self.infonce(self._prefix(query, dim), self._prefix(docs, dim), targets=targets, mask=inputs.mask)
            self.last_terms[f"dim_{dim}"] = float(value.detach())
            total = weight * value if total is None else total + weight * value
        return total


def _dims_problem(dims: list[int], run: dict) -> str | None:
    """Each prefix length must be one the run's model gives (where its size is known before the run)."""
    dim = embedding_dim(run.get("model"))
    too_long = [d for d in dims if dim is not None and d > dim]
    return f"{too_long} exceed the model's embedding dimension {dim}" if too_long else None
