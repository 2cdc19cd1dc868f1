"""Structured schema of the composed run config (the parts that are not ``_target_`` components).

Component groups (model, objective, index, trainer, ...) are checked against the signature of
their ``_target_`` instead, so a component's constructor is its one schema.
"""

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

STAGES = ("train", "index", "evaluate")
MINER_KINDS = ("none", "bm25", "dense", "dense_refresh", "star", "file")
SAMPLER_KINDS = ("random", "tas_balanced")
NEGATIVE_PICKING = ("top", "random", "balanced_margin")


@dataclass
class PathsSchema:
    root_dir: str = MISSING
    data_dir: str = MISSING
    output_dir: str = MISSING
    log_dir: str = MISSING
    cache_dir: str = MISSING


@dataclass
class DataSchema:
    name: str = MISSING
    root: str = MISSING
    download: bool = True
    train_split: str = "train"
    eval_split: str = "test"
    doc_template: str = "{title} {text}"
    batch_size: int = 32
    val_queries: int = 0
    val_distractors: int = 1000
    num_workers: int = 0
    pseudo_queries: int = 0


@dataclass
class MinerSchema:
    """Hard negatives for training (``conf/miner/``); see retrieval_lab.mining."""

    kind: str = "none"  # none | bm25 | dense | dense_refresh | star
    num_negatives: int = 1
    rank_range: list[int] = field(default_factory=lambda: [1, 100])
    sampling: str = "top"
    absolute_margin: Optional[float] = None
    relative_margin: Optional[float] = None
    max_score: Optional[float] = None
    exclude_positives: bool = True
    # Negatives each training pair carries per batch, drawn from its query's num_negatives.
    per_pair: Optional[int] = None
    # dense, dense_refresh, star: null (the run's model before training), a path, or a model config.
    model: Any = None
    bm25: dict[str, Any] = field(default_factory=dict)
    refresh_every_n_steps: Optional[int] = None
    random_negatives: int = 0
    # A negatives JSONL to use as is (kind=file).
    path: Optional[str] = None


@dataclass
class SamplerSchema:
    """How batches are formed (``conf/sampler/``); see retrieval_lab.sampling."""

    kind: str = "random"  # random | tas_balanced
    negatives: str = "random"  # top | random | balanced_margin
    margin_bins: int = 10
    n_clusters: int = 64
    kmeans_iterations: int = 25


@dataclass
class RunSchema:
    task_name: str = MISSING
    tags: list[str] = field(default_factory=list)
    seed: int = MISSING
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    data: DataSchema = field(default_factory=DataSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)
    model: Any = MISSING
    objective: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    index: Any = MISSING
    evaluator: Any = MISSING
    trainer: Any = MISSING
    miner: MinerSchema = field(default_factory=MinerSchema)
    sampler: SamplerSchema = field(default_factory=SamplerSchema)
    teacher: Optional[Any] = None
    in_batch_teacher: Optional[Any] = None
    logger: Optional[Any] = None
    callbacks: Optional[Any] = None
    optimized_metric: Optional[str] = None
    load_index: Optional[str] = None
    encode_batch_size: int = 64
    progress: bool = True
