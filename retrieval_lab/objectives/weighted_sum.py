"""Objectives combined as a weighted sum of named terms from config, e.g. InfoNCE + Margin-MSE::

    _target_: retrieval_lab.objectives.WeightedSum
    terms:
      infonce: {weight: 1.0, loss: {_target_: retrieval_lab.objectives.InfoNCE}}
      margin_mse: {weight: 0.5, loss: {_target_: retrieval_lab.objectives.MarginMSE}}
"""

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from retrieval_lab.objectives.base import Need, Objective
from retrieval_lab.objectives.inputs import LossInputs


class WeightedSum(Objective):
    r""":math:`\mathcal{L} = \sum_n w_n \mathcal{L}_n`; :attr:`last_terms` keeps each term's
    unweighted value of the last call, for logging as ``train/<name>``.

    Its :attr:`needs` are the union of its terms' and it :attr:`reads_documents` when any term
    does; they depend on the terms, so they are set on the instance (config validation reads the
    terms' classes instead)."""

    def __init__(self, terms: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("a weighted sum needs at least one term")
        for name, term in terms.items():
            if set(term) != {"loss", "weight"}:
                raise ValueError(f"term {name!r} must have exactly 'loss' and 'weight', got {sorted(term)}")
            if not isinstance(term["loss"], Objective):
                raise TypeError(f"term {name!r}: {type(term['loss']).__qualname__} is not an Objective "
                                "(retrieval_lab.objectives.base), so it cannot compute from LossInputs")
        self.losses = nn.ModuleDict({name: term["loss"] for name, term in terms.items()})
        self.weights = {name: float(term["weight"]) for name, term in terms.items()}
        self.last_terms: dict[str, float] = {}
        self.needs = frozenset[Need]().union(*(term["loss"].needs for term in terms.values()))
        self.reads_documents = any(term["loss"].reads_documents for term in terms.values())

    def compute(self, inputs: LossInputs) -> torch.Tensor:
        total = None
        for name, loss in self.losses.items():
            value = loss.compute(inputs)
            self.last_terms[name] = float(value.detach())
            total = self.weights[name] * value if total is None else total + self.weights[name] * value
        return total
