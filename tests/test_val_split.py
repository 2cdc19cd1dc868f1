"""The evaluator's ``val`` split: the train queries training holds out, and its config errors."""

from pathlib import Path

import pytest

from retrieval_lab.config import ConfigError
from retrieval_lab.data.beir import load_beir
from retrieval_lab.data.val_split import VAL_SPLIT, file_splits, with_val_split
from retrieval_lab.training.training_set import judged_pairs
from tests.test_config import _validated


def test_val_is_the_queries_training_holds_out_with_their_train_qrels(tiny_beir: Path):
    dataset = load_beir(tiny_beir, "tiny", ["train", "test"], download=False)
    with_val = with_val_split(dataset, "train", 5, seed=7)
    held_out = judged_pairs(dataset, "train", "{title} {text}", val_queries=5, seed=7).held_out
    assert list(with_val.qrels[VAL_SPLIT]) == sorted(held_out.queries)
    assert with_val.qrels[VAL_SPLIT] == held_out.qrels
    assert with_val.split_queries(VAL_SPLIT) == held_out.queries
    assert with_val.qrels["train"] == dataset.qrels["train"] and VAL_SPLIT not in dataset.qrels
    assert with_val.quirks[VAL_SPLIT].no_relevant == [] and with_val.quirks[VAL_SPLIT].missing_docs == []
    assert list(with_val_split(dataset, "train", 5, seed=8).qrels[VAL_SPLIT]) != list(with_val.qrels[VAL_SPLIT])


def test_val_is_read_from_the_train_splits_file():
    assert file_splits(["train", "val"], "train") == ["train"]
    assert file_splits(["val"], "train") == ["train"]
    assert file_splits(["test"], "train") == ["test"]


def test_holding_out_every_query_is_an_error_naming_the_setting(tiny_beir: Path):
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    with pytest.raises(ValueError, match=r"data.val_queries=30 leaves no training queries \(split 'train' has 30\)"):
        with_val_split(dataset, "train", 30, seed=0)


@pytest.mark.parametrize(("overrides", "says"), [
    ([], "needs data.train_split and data.val_queries > 0 (got 'train' and 0)"),
    (["data=arguana", "data.val_queries=100"], "(got None and 100)"),
    (["data.val_queries=100", "benchmark=beir_small"], "drop benchmark"),
])
def test_val_without_held_out_queries_is_a_config_error_naming_the_split(overrides, says):
    with pytest.raises(ConfigError) as info:
        _validated(["stages=[index,evaluate]", "evaluator.split=val", *overrides])
    assert info.value.key == "evaluator.split" and says in str(info.value)


def test_val_with_held_out_queries_validates():
    _validated(["stages=[index,evaluate]", "evaluator.split=val", "data.val_queries=100"])
