"""Structured schema of the composed run config (the parts that are not ``_target_`` components).

Component groups (model, objective, miner, sampler, index, trainer, ...) are checked against the
signature of their ``_target_`` instead, so a component's constructor is its one schema; the
cross-field rules a signature cannot express are the component's ``rules`` (config/rules.py).
"""

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

STAGES = ("train", "index", "evaluate")


@dataclass
class PathsSchema:
    root_dir: str = MISSING
    data_dir: str = MISSING
    output_dir: str = MISSING
    log_dir: str = MISSING
    cache_dir: str = MISSING


@dataclass
class MtebTaskSchema:
    """The MTEB task a dataset is, for its MTEB-format results file."""
    task_name: str = MISSING
    revision: str = MISSING
    split: str = MISSING


@dataclass
class DataSchema:
    name: str = MISSING
    root: str = MISSING
    download: bool = True
    strict: bool = False
    train_split: Optional[str] = None
    eval_split: str = "test"
    doc_template: str = "{title} {text}"
    ignore_identical_ids: bool = False
    query_max_length: Optional[int] = None
    doc_max_length: Optional[int] = None
    mteb: Optional[MtebTaskSchema] = None
    batch_size: int = 32
    val_queries: int = 0
    val_distractors: int = 1000
    num_workers: int = 0
    pseudo_queries: int = 0


@dataclass
class RunSchema:
    task_name: str = MISSING
    tags: list[str] = field(default_factory=list)
    seed: int = MISSING
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    data: DataSchema = field(default_factory=DataSchema)
    paths: PathsSchema = field(default_factory=PathsSchema)
    model: Optional[Any] = MISSING  # null: the index reads the texts (index=bm25)
    objective: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    index: Any = MISSING
    evaluator: Any = MISSING
    trainer: Any = MISSING
    miner: Optional[Any] = None
    sampler: Any = MISSING
    teacher: Optional[Any] = None
    in_batch_teacher: Optional[Any] = None
    logger: Optional[Any] = None
    callbacks: Optional[Any] = None
    optimized_metric: Optional[str] = None
    load_index: Optional[str] = None
    benchmark: Optional[Any] = None
    encode_batch_size: int = 64
    encode_precision: str = "auto"
    progress: bool = True
