"""Batch formation: TAS-Balanced topic batches, and which mined negatives a pair carries."""

import random
from collections import Counter

import numpy as np
import pytest

from retrieval_lab.sampling import NegativePicker, TopicBatchSampler, cluster_queries


def test_kmeans_recovers_well_separated_topics():
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:4] * 5
    points = np.concatenate([c + rng.normal(0, 0.1, (25, 8)) for c in centres]).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    labels = cluster_queries(points, 4, seed=0)
    for topic in range(4):  # each true topic is one cluster, and the four are distinct
        assert len(set(labels[topic * 25:(topic + 1) * 25])) == 1
    assert len(set(labels)) == 4
    with pytest.raises(ValueError, match="n_clusters=101"):
        cluster_queries(points, 101, seed=0)


def test_every_batch_comes_from_one_cluster_and_an_epoch_visits_every_pair_once():
    clusters = [i % 5 for i in range(103)]
    sampler = TopicBatchSampler(clusters, batch_size=8, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    for batch in batches:
        assert len({clusters[i] for i in batch}) == 1 and 1 <= len(batch) <= 8
    assert sorted(i for b in batches for i in b) == list(range(103))
    sampler.set_epoch(1)
    assert list(sampler) != batches  # a new shuffle each epoch
    sampler.set_epoch(0)
    assert list(sampler) == batches  # and the same one for the same epoch


def test_ranks_share_out_full_batches_without_overlap():
    clusters = [i % 3 for i in range(90)]
    shards = [list(TopicBatchSampler(clusters, 8, seed=0, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) > 0
    seen = [i for shard in shards for b in shard for i in b]
    assert len(seen) == len(set(seen))
    assert all(len(b) == 8 and len({clusters[i] for i in b}) == 1 for shard in shards for b in shard)


POOL = [(f"d{i}", 10.0 - i * 0.1) for i in range(9)] + [("far", 0.0)]  # nine close, one far


def test_picking_top_and_random():
    rng = random.Random(0)
    assert NegativePicker("top").pick(POOL, 2, rng) == ["d0", "d1"]
    draws = [tuple(NegativePicker("random").pick(POOL, 2, rng)) for _ in range(200)]
    assert all(len(set(d)) == 2 for d in draws) and len(set(draws)) > 20
    assert NegativePicker("random").pick(POOL[:1], 3, rng) == ["d0"]  # a short pool is all taken


def test_balanced_margin_picking_draws_every_margin_bin_alike():
    rng = random.Random(0)
    picker = NegativePicker("balanced_margin", bins=2)  # bins: [0, 5) holds "far", [5, 10] the rest
    counts = Counter(d == "far" for _ in range(2000) for d in picker.pick(POOL, 1, rng))
    assert abs(counts[True] / 2000 - 0.5) < 0.05  # uniform picking would give "far" 10%
    with pytest.raises(ValueError, match="needs a score"):
        picker.pick([("a", None), ("b", 1.0), ("c", 2.0)], 1, rng)
