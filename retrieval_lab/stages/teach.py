"""Stage ``teach``: the teacher scores every pair the training can show, once, before training
(from the score cache when the same teacher has scored the same pairs before)."""

import logging
from pathlib import Path
from typing import Any

from retrieval_lab.data.datamodule import ContrastiveDataModule
from retrieval_lab.teachers import Teacher, cached_teacher_scores

log = logging.getLogger(__name__)


def teach(teacher: Teacher, datamodule: ContrastiveDataModule, split: str, doc_template: str,
          cache_dir: str | Path) -> dict[str, Any]:
    """Gives ``datamodule`` the teacher's scores; returns the run record's ``teacher`` entry."""
    pairs = datamodule.scored_pairs()
    scores, path, record = cached_teacher_scores(teacher, datamodule.dataset, split, pairs, doc_template, cache_dir)
    datamodule.teacher_scores = scores
    log.info("teacher %s: %d pairs from %s (cache %s)", record["teacher"]["kind"], len(pairs), path,
             "hit" if record["cache_hit"] else "miss")
    return {"file": str(path), **record}
