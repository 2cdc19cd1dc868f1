"""Training pairs, the held-out validation slice, and the in-batch false-negative mask."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval_lab.data.beir import load_beir
from retrieval_lab.training.cross_device import false_negative_mask
from retrieval_lab.training.datamodule import ContrastiveDataModule
from retrieval_lab.errors import DataError
from retrieval_lab.training.training_set import InBatchTeacher, Pair, TrainingSet, judged_pairs
from retrieval_lab.training.training_set_file import load_training_set, save_training_set
from tests.test_model import tiny


def _training_set(root: Path, **kwargs) -> TrainingSet:
    dataset = load_beir(root, "tiny", ["train"], download=False)
    return judged_pairs(dataset, **{**dict(split="train", doc_template="{title} {text}", seed=3), **kwargs})


def test_pairs_and_held_out_queries_are_disjoint(tiny_beir: Path):
    dm = _training_set(tiny_beir, val_queries=5, val_distractors=10)
    train_queries = {p.query_id for p in dm.pairs}
    assert len(dm.held_out.queries) == 5
    assert not train_queries & set(dm.held_out.queries)
    assert len(dm.pairs) == 30 - 5
    judged = {d for docs in dm.held_out.qrels.values() for d in docs}
    assert judged <= set(dm.held_out.corpus)
    assert len(dm.held_out.corpus) == len(judged) + 10


def test_held_out_slice_is_seeded(tiny_beir: Path):
    a = _training_set(tiny_beir, val_queries=5)
    b = _training_set(tiny_beir, val_queries=5)
    c = _training_set(tiny_beir, val_queries=5, seed=4)
    assert a.held_out.queries == b.held_out.queries
    assert a.held_out.queries != c.held_out.queries


def test_zero_val_queries_turns_validation_off(tiny_beir: Path):
    training_set = _training_set(tiny_beir, val_queries=0)
    assert training_set.held_out is None and len(training_set.pairs) == 30
    assert list(training_set.queries) == sorted(training_set.positives)  # every query with a positive


def test_holding_out_every_query_is_an_error(tiny_beir: Path):
    with pytest.raises(ValueError, match="val_queries=30"):
        _training_set(tiny_beir, val_queries=30)


def test_collate_keys_give_the_false_negative_mask(tiny_beir: Path):
    training_set = _training_set(tiny_beir)
    # pretend q0 is also answered by d1
    positives = {**training_set.positives, "q0": training_set.positives["q0"] | {"d1"}}
    dm = ContrastiveDataModule(dataclasses.replace(training_set, positives=positives), tiny().tokenization, 4)
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


def test_the_training_set_grows_by_replacement_and_a_refresh_keeps_the_pairs(tiny_beir: Path):
    training_set = _training_set(tiny_beir, val_queries=5)
    mined = training_set.with_negatives({"q0": [("d50", 1.0)]}, per_pair=2, seed=0)
    assert training_set.negatives == {} and training_set.negatives_per_pair == 0  # untouched
    assert mined.pairs == training_set.pairs and mined.held_out == training_set.held_out
    trained_queries = {p.query_id for p in mined.pairs}
    assert set(mined.negatives) >= trained_queries and all(len(mined.negatives[q]) >= 2 for q in trained_queries)
    assert mined.with_negatives({"q0": [("d50", 1.0)]}, 2, seed=0).negatives == mined.negatives  # seeded
    dm = ContrastiveDataModule(mined, tiny().tokenization, 4)
    dm.use(mined.with_negatives({}, 2, seed=1))
    assert dm.training_set.negatives != mined.negatives
    with pytest.raises(ValueError, match="keep the training pairs"):
        dm.use(_training_set(tiny_beir, val_queries=6))


def test_a_saved_training_set_loads_back_whole(tiny_beir: Path, tmp_path: Path):
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    mined = judged_pairs(dataset, "train", "{title} {text}", val_queries=5, val_distractors=10, seed=3)
    mined = mined.with_negatives({"q0": [("d50", 1.5)], "q1": [("d51", None)]}, per_pair=2, seed=0)
    rng = np.random.default_rng(0)
    taught = mined.with_teaching(
        teacher_scores={pair: float(i) for i, pair in enumerate(mined.scored_pairs())},
        teacher_query={q: rng.random(4, dtype=np.float32) for q in mined.queries},
        in_batch_teacher=InBatchTeacher({q: rng.random(4, dtype=np.float32) for q in mined.queries},
                                        {d: rng.random(4, dtype=np.float32) for _, d in mined.scored_pairs()}))
    save_training_set(taught, tmp_path / "training_set")
    loaded = load_training_set(tmp_path / "training_set", dataset)
    plain = ("split", "doc_template", "queries", "pairs", "positives", "held_out", "negatives",
             "negatives_per_pair", "topped_up", "teacher_scores")
    assert {f: getattr(loaded, f) for f in plain} == {f: getattr(taught, f) for f in plain}
    for got, want in ((loaded.teacher_query, taught.teacher_query),
                      (loaded.in_batch_teacher.queries, taught.in_batch_teacher.queries),
                      (loaded.in_batch_teacher.documents, taught.in_batch_teacher.documents)):
        assert list(got) == list(want) and all(np.array_equal(got[k], want[k]) for k in want)
    batches = [ContrastiveDataModule(ts, tiny().tokenization, 4, seed=0).collate(list(ts.pairs[:3]))
               for ts in (taught, loaded)]
    assert all(torch.equal(batches[0][k], batches[1][k])
               for k in ("doc_keys", "teacher_pairs", "teacher_query", "in_batch_teacher_docs"))
    other = dataclasses.replace(dataset, name="other")
    with pytest.raises(DataError, match="made from dataset 'tiny'"):
        load_training_set(tmp_path / "training_set", other)
