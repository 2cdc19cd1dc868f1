"""Objectives declare what they read as typed class attributes (Objective, Need), which weighted
sums combine and config validation reads before anything is built."""

import json

import pytest
import torch

from retrieval_lab.config import ConfigError
from retrieval_lab.objectives import (DualTeacher, EmbeddingDistillation, InfoNCE, ListwiseCE, ListwiseKL, LossInputs,
                                      MarginMSE, MissingInput, Need, Objective, PointwiseBCE, WeightedSum)
from retrieval_lab.objectives.matryoshka import MatryoshkaInfoNCE
from tests.test_config import _validated

DECLARED = {
    InfoNCE: (frozenset(), True),
    MatryoshkaInfoNCE: (frozenset(), True),
    MarginMSE: (frozenset({Need.TEACHER_PAIRS}), True),
    ListwiseKL: (frozenset({Need.TEACHER_PAIRS}), True),
    DualTeacher: (frozenset({Need.TEACHER_PAIRS, Need.TEACHER_BATCH}), True),
    EmbeddingDistillation: (frozenset({Need.TEACHER_QUERY}), False),
    PointwiseBCE: (frozenset(), True),
    ListwiseCE: (frozenset(), True),
}


def test_a_need_is_its_string_value():
    needs = frozenset({Need.TEACHER_PAIRS, Need.TEACHER_BATCH})
    assert Need.TEACHER_PAIRS == "teacher_pairs" and "teacher_pairs" in needs and Need("teacher_query") in {"teacher_query"}
    assert needs & {"teacher_pairs", "teacher_query"} == {Need.TEACHER_PAIRS}
    assert needs - {"teacher_batch"} == {"teacher_pairs"}
    assert sorted(needs) == ["teacher_batch", "teacher_pairs"]
    # messages and run records read as before
    assert f"{sorted(needs)}" == "['teacher_batch', 'teacher_pairs']" and f"{Need.TEACHER_QUERY}" == "teacher_query"
    assert json.dumps({"provides": sorted(needs)}) == '{"provides": ["teacher_batch", "teacher_pairs"]}'


@pytest.mark.parametrize("cls", list(DECLARED), ids=lambda cls: cls.__name__)
def test_every_objective_declares_typed_needs(cls):
    assert issubclass(cls, Objective) and issubclass(cls, torch.nn.Module)
    assert (cls.needs, cls.reads_documents) == DECLARED[cls]
    assert all(isinstance(need, Need) for need in cls.needs)


def test_an_objective_must_compute():
    class Forgetful(Objective):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Forgetful()


def test_a_weighted_sum_needs_what_its_terms_need():
    combined = WeightedSum({"infonce": {"loss": InfoNCE(), "weight": 1.0},
                            "dual": {"loss": DualTeacher(), "weight": 0.5},
                            "distil": {"loss": EmbeddingDistillation(), "weight": 1.0}})
    assert combined.needs == {Need.TEACHER_PAIRS, Need.TEACHER_BATCH, Need.TEACHER_QUERY}
    assert combined.reads_documents is True
    alone = WeightedSum({"distil": {"loss": EmbeddingDistillation(), "weight": 1.0}})
    assert alone.needs == {Need.TEACHER_QUERY} and alone.reads_documents is False
    nested = WeightedSum({"inner": {"loss": alone, "weight": 1.0}, "kl": {"loss": ListwiseKL(), "weight": 1.0}})
    assert nested.needs == {Need.TEACHER_QUERY, Need.TEACHER_PAIRS}


def test_a_weighted_sum_takes_objectives_only():
    with pytest.raises(TypeError, match="'mse': MSELoss is not an Objective"):
        WeightedSum({"mse": {"loss": torch.nn.MSELoss(), "weight": 1.0}})


def test_an_objective_given_the_wrong_kind_of_step_names_what_is_missing():
    with pytest.raises(MissingInput, match="query embeddings"):
        InfoNCE().compute(LossInputs(pair_logits=torch.zeros(2, 3)))
    with pytest.raises(MissingInput, match="cross-encoder's logits"):
        ListwiseCE().compute(LossInputs(torch.zeros(2, 4), torch.zeros(2, 4), torch.arange(2)))


@pytest.mark.parametrize(("overrides", "key"), [
    (["objective._target_=torch.nn.MSELoss"], "objective._target_"),
    (["objective=infonce_margin_mse", "objective.terms.margin_mse.loss._target_=torch.nn.MSELoss"],
     "objective.terms.margin_mse.loss._target_"),
    (["objective._target_=retrieval_lab.objectives.NoSuchLoss"], "objective._target_"),
])
def test_validation_refuses_a_target_that_is_not_an_objective(overrides, key):
    with pytest.raises(ConfigError, match="is not an objective|cannot import") as info:
        _validated(overrides)
    assert info.value.key == key


def test_validation_reads_the_needs_of_a_nested_weighted_sum():
    inner = ("+objective.terms.inner={weight: 1.0, loss: {_target_: retrieval_lab.objectives.WeightedSum, "
             "terms: {kl: {weight: 1.0, loss: {_target_: retrieval_lab.objectives.ListwiseKL}}}}}")
    overrides = ["objective=infonce_margin_mse", "~objective.terms.margin_mse", inner]
    with pytest.raises(ConfigError, match="teacher_pairs") as info:
        _validated(overrides)
    assert info.value.key == "teacher"
    _validated([*overrides, "miner=bm25", "teacher=bm25"])
