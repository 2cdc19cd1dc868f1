"""Training pairs, the held-out validation slice, and the in-batch false-negative mask."""

from pathlib import Path

import pytest
import torch

from retrieval_lab.data.beir import load_beir
from retrieval_lab.training.cross_device import false_negative_mask
from retrieval_lab.training.datamodule import ContrastiveDataModule, Pair
from tests.test_model import tiny


def _module(root: Path, **kwargs) -> ContrastiveDataModule:
    dataset = load_beir(root, "tiny", ["train"], download=False)
    args = dict(split="train", batch_size=4, doc_template="{title} {text}", seed=3)
    return ContrastiveDataModule(dataset, tiny().tokenization, **{**args, **kwargs})


def test_pairs_and_held_out_queries_are_disjoint(tiny_beir: Path):
    dm = _module(tiny_beir, val_queries=5, val_distractors=10)
    train_queries = {p.query_id for p in dm.pairs}
    assert len(dm.held_out.queries) == 5
    assert not train_queries & set(dm.held_out.queries)
    assert len(dm.pairs) == 30 - 5
    judged = {d for docs in dm.held_out.qrels.values() for d in docs}
    assert judged <= set(dm.held_out.corpus)
    assert len(dm.held_out.corpus) == len(judged) + 10


def test_held_out_slice_is_seeded(tiny_beir: Path):
    a = _module(tiny_beir, val_queries=5)
    b = _module(tiny_beir, val_queries=5)
    c = _module(tiny_beir, val_queries=5, seed=4)
    assert a.held_out.queries == b.held_out.queries
    assert a.held_out.queries != c.held_out.queries


def test_zero_val_queries_turns_validation_off(tiny_beir: Path):
    dm = _module(tiny_beir, val_queries=0)
    assert dm.held_out is None and len(dm.pairs) == 30


def test_holding_out_every_query_is_an_error(tiny_beir: Path):
    with pytest.raises(ValueError, match="val_queries=30"):
        _module(tiny_beir, val_queries=30)


def test_collate_keys_give_the_false_negative_mask(tiny_beir: Path):
    dm = _module(tiny_beir)
    dm.positives["q0"].add("d1")  # pretend q0 is also answered by d1
    batch = dm.collate([Pair("q0", "d0"), Pair("q1", "d1"), Pair("q0", "d1"), Pair("q2", "d2")])
    key = dm.doc_keys
    assert batch["doc_keys"].tolist() == [key["d0"], key["d1"], key["d1"], key["d2"]]
    assert batch["query_positives"].tolist()[1] == [key["d1"], -1]
    mask = false_negative_mask(batch["query_positives"], batch["doc_keys"], torch.arange(4)).tolist()
    assert mask[0] == [False, True, True, False]  # d1 twice: a positive of q0, not a negative
    assert mask[2] == [True, True, False, False]  # d0 is a positive of q0; so is the other d1
    assert mask[1] == [False, False, True, False]  # the other copy of d1 is q1's positive too
    assert mask[3] == [False, False, False, False]
    assert batch["query"]["input_ids"].shape[0] == 4 and batch["doc"]["input_ids"].shape[0] == 4
