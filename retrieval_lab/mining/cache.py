"""Mined negatives are written once per (dataset files, split, miner, mining model, seed) and read
back by every later run and every job of a sweep: ``<cache_dir>/negatives/<key>.jsonl``."""

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval_lab.content_cache import ContentCache, DataWriter, expect_count
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
    from the cache, or mined and written there (once, by one of the parallel jobs that need them).
    Returns them, the file, and its record (what made it, drop counts, checksums, cache hit)."""
    key, parts = negatives_key(miner, dataset, split, doc_template, model)
    cache = ContentCache(cache_dir, "negatives", ".jsonl")

    def load(path: Path, record: dict[str, Any]) -> Negatives:
        negatives = read_negatives(path, dataset.corpus)
        expect_count(len(negatives), record, "lines", "queries")
        return negatives

    def build() -> tuple[dict[str, Any], DataWriter]:
        result = miner.mine(dataset, split, doc_template, model)
        record = {"key": key, **parts, **result.summary(), "lines": len(result.negatives)}
        return record, lambda tmp: write_negatives(tmp, result.negatives)

    entry = cache.fetch(key, load, build)
    log.info("negatives cache %s: %s", "hit" if entry.hit else "miss: mined and wrote", entry.path)
    return entry.value, entry.path, {**entry.record, "cache_hit": entry.hit}
