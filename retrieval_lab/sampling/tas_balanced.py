"""TAS-Balanced batches (Hofstätter et al., 2021, "Efficiently Teaching an Effective Dense Retriever
with Balanced Topic Aware Sampling"): the training queries are clustered once by their embeddings
(faiss k-means), and every batch is drawn from a single cluster, so in-batch negatives share the
query's topic and are harder than random ones.

An epoch here visits every training pair once: each cluster's pairs are shuffled and cut into
batches of ``batch_size`` (a cluster's last batch may be smaller), and the batches are shuffled.
"""

import logging
import random
from collections.abc import Callable, Iterator, Sequence

import faiss
import numpy as np

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.encoding import encode_texts
from retrieval_lab.models.bi_encoder import BiEncoder
from retrieval_lab.sampling.negative_picking import Strategy
from retrieval_lab.sampling.sampler import BatchSamplerFactory, Sampler
from retrieval_lab.training.cross_device import world

log = logging.getLogger(__name__)


def cluster_queries(embeddings: np.ndarray, n_clusters: int, seed: int, iterations: int = 25) -> np.ndarray:
    """The k-means cluster of each row of ``embeddings`` (spherical k-means: the embeddings are
    compared by inner product, as the retriever compares them)."""
    count = len(embeddings)
    if not 1 <= n_clusters <= count:
        raise ValueError(f"sampler.n_clusters={n_clusters} must be between 1 and the {count} training queries")
    data = np.ascontiguousarray(embeddings, dtype=np.float32)
    kmeans = faiss.Kmeans(data.shape[1], n_clusters, niter=iterations, seed=seed, spherical=True,
                          min_points_per_centroid=1, max_points_per_centroid=max(256, count))
    kmeans.train(data)
    _, labels = kmeans.index.search(data, 1)
    return labels[:, 0]


class TopicBatchSampler:
    """Batches of indices into the training pairs, each from one cluster (``clusters[i]`` is pair
    i's). With several processes, rank r takes every world_size-th batch, and batches short of
    ``batch_size`` are dropped so that every rank gathers equally many documents."""

    def __init__(self, clusters: Sequence[int], batch_size: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        self.clusters = list(clusters)
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called at each epoch start (training.batches.ResumableBatches): a new shuffle per epoch,
        the same on every rank."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        members: dict[int, list[int]] = {}
        for i, cluster in enumerate(self.clusters):
            members.setdefault(cluster, []).append(i)
        batches = []
        for cluster in sorted(members):
            indices = members[cluster]
            rng.shuffle(indices)
            batches += [indices[i:i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        if self.world_size > 1:
            batches = [b for b in batches if len(b) == self.batch_size]
        rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.world_size
        return batches[self.rank:usable:self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def topic_batches(model: BiEncoder, dataset: BeirDataset, n_clusters: int, batch_size: int, seed: int,
                  iterations: int = 25, encode_batch_size: int = 64) -> Callable[[list], TopicBatchSampler]:
    """The data module's batch sampler factory: given the training pairs (``query_id`` each), it
    clusters their queries with ``model`` as it is then (training has not started) and returns the
    sampler, sharded over the processes of a distributed run."""

    def factory(pairs: list) -> TopicBatchSampler:
        query_ids = sorted({p.query_id for p in pairs})
        training = model.training
        model.eval()
        embeddings = encode_texts(model, [dataset.queries[q] for q in query_ids], "query",
                                  encode_batch_size, progress=False)
        model.train(training)
        labels = cluster_queries(embeddings, n_clusters, seed, iterations)
        cluster_of = dict(zip(query_ids, labels.tolist()))
        sizes = sorted(int((labels == c).sum()) for c in set(labels.tolist()))
        log.info("TAS-Balanced: %d queries in %d clusters (sizes %d..%d, median %d)",
                 len(query_ids), len(sizes), sizes[0], sizes[-1], sizes[len(sizes) // 2])
        rank, size = world()
        return TopicBatchSampler([cluster_of[p.query_id] for p in pairs], batch_size, seed, rank, size)

    return factory


class TopicBatches(Sampler):
    """TAS-Balanced batches (``sampler=tas_balanced``): ``n_clusters`` k-means clusters of the
    training queries (``kmeans_iterations``, ``seed``), embedded by the run's model before training
    (``encode_batch_size``); every batch from one cluster. The rest as :class:`Sampler`; hard
    negatives are drawn by balanced margin by default."""

    groups_batches = True
    trainer_kwargs = {"use_distributed_sampler": False}  # it shards the batches over the ranks itself

    def __init__(self, n_clusters: int = 64, kmeans_iterations: int = 25, negatives: Strategy = "balanced_margin",
                 margin_bins: int = 10, seed: int = 0, encode_batch_size: int = 64) -> None:
        super().__init__(negatives, margin_bins)
        self.n_clusters = n_clusters
        self.kmeans_iterations = kmeans_iterations
        self.seed = seed
        self.encode_batch_size = encode_batch_size

    def batch_sampler(self, model: BiEncoder, dataset: BeirDataset, batch_size: int) -> BatchSamplerFactory:
        return topic_batches(model, dataset, self.n_clusters, batch_size, self.seed, self.kmeans_iterations,
                             self.encode_batch_size)
