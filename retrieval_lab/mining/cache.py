"""Mined negatives are written once per (dataset files, split, miner, mining model, seed) and read
back by every later run and every job of a sweep: ``<cache_dir>/negatives/<key>.jsonl``."""

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval_lab.content_cache import ContentCache
from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.mining.negatives_file import Negatives, read_negatives, write_negatives
from retrieval_lab.provenance import data_checksums

if TYPE_CHECKING:  # the miner module builds on this one
    from retrieval_lab.mining.miner import RankingMiner

log = logging.getLogger(__name__)


def negatives_key(miner: "RankingMiner", dataset: BeirDataset, split: str, doc_template: str,
                  model: Any = None) -> tuple[str, dict[str, Any]]:
    parts = {
        "dataset": dataset.name,
        "sha256": data_checksums(dataset.path, [split]),
        "split": split,
        "doc_template": doc_template,
        "miner_class": f"{type(miner).__module__}.{type(miner).__qualname__}",
        "selection": vars(miner.selection) | {"rank_range": list(miner.selection.rank_range)},
        "model": miner.fingerprint(model),
        # The seed matters only where the miner draws at random.
        "seed": miner.seed if miner.uses_seed else None,
    }
    return ContentCache.key(parts), parts


def cached_negatives(
    miner: "RankingMiner", dataset: BeirDataset, split: str, doc_template: str, cache_dir: str | Path,
    model: Any = None,
) -> tuple[Negatives, Path, dict[str, Any]]:
    """The negatives of ``split`` under ``miner`` (ranking with ``model``, if it takes one): read
    from the cache, or mined and written there. Returns them, the file, and its record (what made
    it, drop counts, cache hit)."""
    key, parts = negatives_key(miner, dataset, split, doc_template, model)
    cache = ContentCache(cache_dir, "negatives", ".jsonl")
    path, _ = cache.paths(key)
    record = cache.lookup(key)
    if record is not None:
        log.info("negatives cache hit: %s", path)
        return read_negatives(path, dataset.corpus), path, {**record, "cache_hit": True}
    result = miner.mine(dataset, split, doc_template, model)
    record = {"key": key, **parts, **result.summary()}
    cache.store(key, record, lambda tmp: write_negatives(tmp, result.negatives))
    log.info("negatives cache miss: mined and wrote %s", path)
    return result.negatives, path, {**record, "cache_hit": False}
