"""The run-level settings that travel together through the stages, built once from the config."""

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from retrieval_lab.embedding_cache import EMBEDDINGS_CACHE


@dataclass(frozen=True)
class RunSettings:
    """``doc_template``: how a document becomes text (``data.doc_template``); ``cache_dir``: the
    content-addressed caches (``paths.cache_dir``); ``encode_batch_size`` and ``progress``: how
    corpora and queries are encoded; ``seed``: the run's seed."""

    doc_template: str
    cache_dir: Path
    encode_batch_size: int = 64
    progress: bool = False
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "RunSettings":
        return cls(cfg.data.doc_template, Path(cfg.paths.cache_dir), cfg.encode_batch_size, cfg.progress, cfg.seed)

    @property
    def embeddings_dir(self) -> Path:
        return self.cache_dir / EMBEDDINGS_CACHE
