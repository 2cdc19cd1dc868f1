"""The ``val`` split: the train queries that ``data.val_queries`` holds out of training (chosen
by the run's seed, the same ones the training's validation uses), judged by the train qrels and
searched against the whole corpus. A setting that is not learned (a fusion weight, a PRF depth)
is chosen there, never on the test split: ``rlab -m index.alpha=0.2,0.4 evaluator.split=val``."""

import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from retrieval_lab.data.beir import BeirDataset
from retrieval_lab.data.quirks import find_quirks

VAL_SPLIT = "val"


def held_out_query_ids(qrels: dict[str, dict[str, int]], split: str, n: int, rng: random.Random) -> list[str]:
    """``n`` of the queries of ``split`` (its ``qrels``) that have a relevant document, drawn
    with ``rng``, in the order drawn."""
    query_ids = sorted(q for q, docs in qrels.items() if any(g > 0 for g in docs.values()))
    if n >= len(query_ids):
        raise ValueError(f"data.val_queries={n} leaves no training queries (split {split!r} "
                         f"has {len(query_ids)})")
    return rng.sample(query_ids, n)


def file_splits(splits: list[str], train_split: str | None) -> list[str]:
    """The qrels files to read for ``splits``: ``val`` is read from the train split's."""
    return list(dict.fromkeys(train_split if s == VAL_SPLIT else s for s in splits))


def with_val_split(dataset: BeirDataset, train_split: str, n: int, seed: int) -> BeirDataset:
    """``dataset`` with a ``val`` split: ``n`` held-out queries of ``train_split`` and their qrels."""
    train = dataset.qrels[train_split]
    held = sorted(held_out_query_ids(train, train_split, n, random.Random(seed)))
    qrels = {q: dict(train[q]) for q in held}
    missing = [m for m in dataset.quirks[train_split].missing_docs if m[1] in qrels]
    return replace(dataset, qrels={**dataset.qrels, VAL_SPLIT: qrels},
                   quirks={**dataset.quirks, VAL_SPLIT: find_quirks(qrels, dataset.corpus, missing)})


def val_split_problem(value: Any, node: Mapping[str, Any], run: dict[str, Any]) -> str | None:
    """``evaluator.split: val`` needs queries held out of a train split, on one dataset."""
    if value != VAL_SPLIT:
        return None
    data = run.get("data") or {}
    if not data.get("train_split") or not data.get("val_queries"):
        return ("'val' is the train queries held out of training: it needs data.train_split and "
                f"data.val_queries > 0 (got {data.get('train_split')!r} and {data.get('val_queries')!r})")
    if run.get("benchmark"):
        return "'val' is one dataset's held-out train queries: drop benchmark to evaluate them"
    return None
