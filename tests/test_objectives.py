"""InfoNCE against values computed by hand from its formula."""

import math

import pytest
import torch

from retrieval_lab.objectives import InfoNCE


def _manual(q, d, targets, tau, mask=None):
    losses = []
    for i in range(q.shape[0]):
        logits = [float(q[i] @ d[j]) / tau for j in range(d.shape[0]) if mask is None or not mask[i, j]]
        pos = float(q[i] @ d[targets[i]]) / tau
        losses.append(-(pos - math.log(sum(math.exp(x) for x in logits))))
    return sum(losses) / len(losses)


def test_in_batch_loss_matches_the_formula():
    q = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    d = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    loss = InfoNCE(temperature=0.5)(q, d)
    # by hand: s = [[0.8, 0.0], [0.96, 0.8]] / 0.5
    expected = (-(1.6 - math.log(math.exp(1.6) + 1.0)) - (1.6 - math.log(math.exp(1.92) + math.exp(1.6)))) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_hard_negatives_are_extra_columns():
    torch.manual_seed(0)
    q, d = torch.randn(3, 4), torch.randn(7, 4)  # 3 positives, then 4 hard negatives
    loss = InfoNCE(temperature=0.1)(q, d)
    assert loss.item() == pytest.approx(_manual(q, d, [0, 1, 2], 0.1), rel=1e-5)
    assert InfoNCE(temperature=0.1)(q, d[:3]).item() < loss.item()


def test_masked_false_negatives_are_left_out_of_the_denominator():
    torch.manual_seed(1)
    q, d = torch.randn(3, 4), torch.randn(3, 4)
    mask = torch.zeros(3, 3, dtype=torch.bool)
    mask[0, 2] = True  # doc 2 is also a positive of query 0
    loss = InfoNCE(temperature=0.2)(q, d, mask=mask)
    assert loss.item() == pytest.approx(_manual(q, d, [0, 1, 2], 0.2, mask), rel=1e-5)


def test_symmetric_adds_the_document_to_query_direction():
    torch.manual_seed(2)
    q, d = torch.randn(4, 8), torch.randn(4, 8)
    forward = InfoNCE(temperature=0.3)(q, d)
    backward = InfoNCE(temperature=0.3)(d, q)
    both = InfoNCE(temperature=0.3, symmetric=True)(q, d)
    assert both.item() == pytest.approx((forward.item() + backward.item()) / 2, rel=1e-6)


def test_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature"):
        InfoNCE(temperature=0)
