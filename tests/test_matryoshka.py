"""Matryoshka InfoNCE against its formula computed by hand, and a tiny run that trains with it."""

import json
import math
from pathlib import Path

import pytest
import torch

from retrieval_lab.objectives import InfoNCE, LossInputs
from retrieval_lab.objectives.matryoshka import MatryoshkaInfoNCE
from tests.conftest import run_rlab


def _infonce_by_hand(query: list[list[float]], docs: list[list[float]], tau: float, masked=()) -> float:
    """-mean_i log softmax_j(cos(q_i, d_j) / tau)[i], the masked (i, j) left out."""
    def unit(v):
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v]
    qs, ds = [unit(q) for q in query], [unit(d) for d in docs]
    total = 0.0
    for i, q in enumerate(qs):
        logits = {j: sum(a * b for a, b in zip(q, d)) / tau for j, d in enumerate(ds) if (i, j) not in masked}
        total -= logits[i] - math.log(sum(math.exp(v) for v in logits.values()))
    return total / len(qs)


QUERY = [[1.0, 0.0, 2.0, -1.0], [0.5, 1.0, -1.0, 0.0]]
DOCS = [[1.0, 0.5, 1.0, -0.5], [0.0, 1.0, 0.5, 2.0], [2.0, -1.0, 0.0, 1.0]]


def _inputs(mask=None) -> LossInputs:
    return LossInputs(query=torch.tensor(QUERY), docs=torch.tensor(DOCS), targets=torch.tensor([0, 1]), mask=mask)


def test_matryoshka_sums_the_weighted_infonce_of_each_renormalized_prefix():
    loss = MatryoshkaInfoNCE(dims=[4, 2], weights=[1.0, 0.5], temperature=0.1)
    value = loss.compute(_inputs())
    full = _infonce_by_hand(QUERY, DOCS, 0.1)
    half = _infonce_by_hand([q[:2] for q in QUERY], [d[:2] for d in DOCS], 0.1)
    assert value.item() == pytest.approx(full + 0.5 * half, rel=1e-5)
    assert loss.last_terms == pytest.approx({"dim_4": full, "dim_2": half}, rel=1e-5)
    assert full != pytest.approx(half)  # the two prefixes do rank differently


def test_one_full_dimension_is_infonce_on_unit_vectors_and_masks_apply():
    mask = torch.tensor([[False, False, True], [False, False, False]])
    value = MatryoshkaInfoNCE(dims=[4], temperature=0.05).compute(_inputs(mask))
    unit = LossInputs(query=torch.nn.functional.normalize(torch.tensor(QUERY), dim=-1),
                      docs=torch.nn.functional.normalize(torch.tensor(DOCS), dim=-1),
                      targets=torch.tensor([0, 1]), mask=mask)
    assert value.item() == pytest.approx(InfoNCE(0.05).compute(unit).item(), rel=1e-6)
    assert value.item() == pytest.approx(_infonce_by_hand(QUERY, DOCS, 0.05, masked={(0, 2)}), rel=1e-5)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"dims": []}, "distinct positive"), ({"dims": [4, 4]}, "distinct positive"),
    ({"dims": [4, 2], "weights": [1.0]}, "2 non-negative numbers"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MatryoshkaInfoNCE(**kwargs)


def test_a_dimension_larger_than_the_embedding_is_an_error():
    with pytest.raises(ValueError, match="dimension 8 exceeds the embedding's 4"):
        MatryoshkaInfoNCE(dims=[8, 4]).compute(_inputs())


def test_a_tiny_run_trains_with_it_and_logs_each_dimension(tmp_path: Path, tiny_beir: Path, tiny_args):
    run_dir = tmp_path / "matryoshka"
    result = run_rlab([*tiny_args, "objective=matryoshka", "objective.dims=[32,16,8]",
                       "trainer.log_every_n_steps=1"], run_dir, tiny_beir)
    assert result.returncode == 0, result.stderr[-3000:]
    header = (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/dim_32", "train/dim_16", "train/dim_8"} <= set(header)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "done"
