"""The rules of the run's own settings, which belong to no component's class: the data loader's,
the trainer's (a Lightning class, whose signature says only ``Optional[int]``), a saved index to
load. Checked with the components' rules (config/rules.py) before any work."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retrieval_lab.config.rules import Param, at_least
from retrieval_lab.run_layout import INDEX_INFO_FILE
from retrieval_lab.training.precision import AUTO, ENCODE_PRECISIONS


def _max_epochs(value: Any, node: Mapping[str, Any], run: dict[str, Any]) -> str | None:
    """Lightning's ``max_epochs``: None (its default: 1000 unless max_steps is set), 0 or more,
    or -1, "no epoch limit", which trains forever unless ``max_steps`` stops it (and the warm-up
    schedule needs a finite number of steps). Lightning itself refuses < -1, but only once the
    model is built."""
    if value is None or value >= 0:
        return None
    max_steps = (run.get("trainer") or {}).get("max_steps")
    if value == -1 and isinstance(max_steps, int) and max_steps > 0:
        return None
    return f"must be >= 0, or -1 (no epoch limit) with trainer.max_steps > 0; got {value!r}"


def _saved_index(value: Any, node: Mapping[str, Any], run: dict[str, Any]) -> str | None:
    if value is None:
        return None
    if not Path(value).is_dir():
        return f"{value} is not a directory"
    if not (Path(value) / INDEX_INFO_FILE).is_file():
        return f"{value} holds no saved index ({INDEX_INFO_FILE} is missing): give a run's index/ directory"
    return None


def _encode_precision(value: Any, node: Mapping[str, Any], run: dict[str, Any]) -> str | None:
    if value is None or str(value) in (AUTO, *ENCODE_PRECISIONS):
        return None
    return f"must be {AUTO}, {' or '.join(ENCODE_PRECISIONS)}; got {value!r}"


def _train_split(value: Any, node: Mapping[str, Any], run: dict[str, Any]) -> str | None:
    if value is None and "train" in run.get("stages", ()):
        return (f"{run['data'].get('name')!r} has no training queries (null), and stages has train: train on "
                "another dataset (benchmark.datasets evaluates on this one), or drop train from stages")
    return None


RUN_RULES = (
    Param("data.train_split", _train_split),
    Param("data.query_max_length", at_least(1)),
    Param("data.doc_max_length", at_least(1)),
    Param("data.batch_size", at_least(1)),
    Param("data.val_queries", at_least(0)),
    Param("data.val_distractors", at_least(0)),
    Param("data.num_workers", at_least(0)),
    Param("data.pseudo_queries", at_least(0)),
    Param("encode_batch_size", at_least(1)),
    Param("encode_precision", _encode_precision),
    Param("trainer.max_epochs", _max_epochs),
    Param("load_index", _saved_index),
)
