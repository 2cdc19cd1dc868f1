"""How training batches are formed: which pairs share a batch (random or TAS-Balanced topic
clusters), and which of a query's mined negatives each pair carries."""

from retrieval_lab.sampling.negative_picking import NegativePicker
from retrieval_lab.sampling.sampler import Sampler
from retrieval_lab.sampling.tas_balanced import TopicBatches, TopicBatchSampler, cluster_queries, topic_batches

__all__ = ["NegativePicker", "Sampler", "TopicBatchSampler", "TopicBatches", "cluster_queries", "topic_batches"]
