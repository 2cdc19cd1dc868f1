"""From the ``miner`` config to negatives for training: builds the configured miner, mines through
the cache (or reads a user's file), and says what happened for the log and the run record."""

import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from retrieval_lab.config.schema import MINER_KINDS, MinerSchema
from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.mining.bm25_miner import BM25Miner
from retrieval_lab.mining.cache import cached_negatives
from retrieval_lab.mining.dense_miner import DenseMiner
from retrieval_lab.mining.miner import Miner
from retrieval_lab.mining.negatives_file import Negatives, read_negatives
from retrieval_lab.mining.selection import NegativeSelection
from retrieval_lab.mining.star_miner import StarMiner
from retrieval_lab.models.bi_encoder import BiEncoder

log = logging.getLogger(__name__)


def miner_settings(cfg: DictConfig | dict | None) -> DictConfig:
    """The ``miner`` node over its schema's defaults (a config without one mines nothing)."""
    return OmegaConf.merge(OmegaConf.structured(MinerSchema), cfg or {})


def negative_selection(cfg: DictConfig) -> NegativeSelection:
    return NegativeSelection(
        num_negatives=cfg.num_negatives, rank_range=tuple(cfg.rank_range), sampling=cfg.sampling,
        absolute_margin=cfg.absolute_margin, relative_margin=cfg.relative_margin,
        max_score=cfg.max_score, exclude_positives=cfg.exclude_positives,
    )


def mining_model(spec: Any, run_model: BiEncoder) -> BiEncoder:
    """``miner.model``: null is the run's own model; a string is an exported model's path (or a hub
    id); a mapping is a model config."""
    if spec is None:
        return run_model
    if isinstance(spec, str):
        return BiEncoder(name_or_path=spec)
    return instantiate(spec)


def build_miner(cfg: DictConfig, run_model: BiEncoder, cache_dir: str | Path | None, seed: int,
                batch_size: int = 64, progress: bool = False) -> Miner:
    selection = negative_selection(cfg)
    if cfg.kind == "bm25":
        return BM25Miner(selection, seed=seed, **OmegaConf.to_container(cfg.bm25))
    dense = {"model": mining_model(cfg.model, run_model), "cache_dir": cache_dir, "seed": seed,
             "batch_size": batch_size, "progress": progress}
    if cfg.kind in ("dense", "dense_refresh"):
        return DenseMiner(selection, **dense)
    if cfg.kind == "star":
        return StarMiner(selection, random_negatives=cfg.random_negatives, **dense)
    raise ValueError(f"miner.kind={cfg.kind!r} builds no miner; choose from {list(MINER_KINDS)}")


def training_negatives(
    cfg: DictConfig, run_model: BiEncoder, dataset: BeirDataset, split: str, doc_template: str,
    cache_dir: str | Path, seed: int, batch_size: int = 64, progress: bool = False,
) -> tuple[Negatives | None, dict[str, Any]]:
    """The hard negatives of ``split`` (None for ``kind=none``) and their record: the file, the
    cache key and hit, and how many candidates each filter dropped."""
    if cfg.kind == "none":
        return None, {"kind": "none"}
    if cfg.kind == "file":
        negatives = read_negatives(Path(cfg.path), dataset.corpus)
        return negatives, {"kind": "file", "file": str(cfg.path), "queries": len(negatives)}
    miner = build_miner(cfg, run_model, Path(cache_dir) / "embeddings", seed, batch_size, progress)
    negatives, path, record = cached_negatives(miner, dataset, split, doc_template, cache_dir)
    log.info("%s negatives for %d queries from %s (cache %s); dropped per filter: %s", cfg.kind,
             len(negatives), path, "hit" if record["cache_hit"] else "miss", record.get("drops"))
    return negatives, {"kind": cfg.kind, "file": str(path), **record}
