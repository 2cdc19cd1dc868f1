"""A dataset's evaluation as MTEB's results file (``mteb.TaskResult``'s JSON), so that a model
evaluated here reads beside the MTEB leaderboard's files and in MTEB's own tools.

The scores are those of MTEB's retrieval tasks, computed here by trec_eval on the same run and
qrels (evaluation/metrics.py): nDCG, MAP, recall, precision and MRR at MTEB's cut-offs, and
``main_score`` = nDCG@10.
MTEB also reports confidence-curve scores (``nauc_*``) and hit rates; they are left out, and
``mteb_version`` is null: the file says it was not written by mteb.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retrieval_lab.atomic import atomic_write_json

MTEB_CUTOFFS = (1, 3, 5, 10, 20, 100, 1000)
MTEB_MEASURES = ("ndcg", "map", "recall", "precision", "mrr")
MAIN_SCORE = "ndcg_at_10"


def mteb_name(metric: str) -> str:
    """Our ``ndcg@10`` as MTEB spells it: ``ndcg_at_10``."""
    return metric.replace("@", "_at_")


# The metrics an MTEB results file holds, in our names.
MTEB_METRICS = tuple(f"{m}@{k}" for m in MTEB_MEASURES for k in MTEB_CUTOFFS)


def mteb_scores(overall: dict[str, float]) -> dict[str, float]:
    """The scores of an MTEB results file, from the means of (at least) :data:`MTEB_METRICS`."""
    scores = {mteb_name(metric): overall[metric] for metric in MTEB_METRICS}
    return {**scores, "main_score": scores[MAIN_SCORE]}


def write_mteb_result(path: Path, task: dict[str, Any], scores: dict[str, float], evaluation_seconds: float,
                      languages: tuple[str, ...] = ("eng-Latn",)) -> None:
    """``task``: the dataset config's ``mteb`` block (task_name, revision, split)."""
    atomic_write_json(path, {
        "dataset_revision": task["revision"],
        "task_name": task["task_name"],
        "mteb_version": None,
        "scores": {task["split"]: [{**scores, "hf_subset": "default", "languages": list(languages)}]},
        "evaluation_time": round(evaluation_seconds, 3),
        "kg_co2_emissions": None,
    })
