"""A dataset's own truncation lengths hold on the model while it is encoded, and only then."""

import pytest

from retrieval_lab.models.dataset_lengths import dataset_lengths
from tests.test_model import tiny


def test_a_datasets_lengths_apply_inside_the_block_and_are_restored_after():
    model = tiny()
    before = dict(model.tokenization.max_lengths)
    with dataset_lengths(model, {"query_max_length": 7, "doc_max_length": None}):
        assert model.tokenization.max_lengths == {**before, "query": 7}
        assert model.tokenization(["a b c d e f g h i j k l"], "query")["input_ids"].shape[1] == 7
    assert model.tokenization.max_lengths == before
    with pytest.raises(RuntimeError), dataset_lengths(model, {"query_max_length": 5, "doc_max_length": 9}):
        raise RuntimeError("an error inside restores them too")
    assert model.tokenization.max_lengths == before


def test_no_lengths_and_no_model_change_nothing():
    model = tiny()
    before = dict(model.tokenization.max_lengths)
    with dataset_lengths(model, {"query_max_length": None, "doc_max_length": None}), dataset_lengths(None, {"query_max_length": 3}):
        assert model.tokenization.max_lengths == before
