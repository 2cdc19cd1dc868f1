"""Stage ``teach``: before training, the teacher gives what the objective reads (its ``needs``):
scores of every pair the training can show (cached: a teacher that scored the same pairs before
is not asked again), or query embeddings for embedding distillation."""

import logging
from pathlib import Path
from typing import Any

from retrieval_lab.data.datamodule import ContrastiveDataModule
from retrieval_lab.teachers import BiEncoderTeacher, Teacher, cached_teacher_scores

log = logging.getLogger(__name__)


def teach(teacher: Teacher, needs: frozenset[str], datamodule: ContrastiveDataModule, split: str,
          doc_template: str, cache_dir: str | Path) -> dict[str, Any]:
    """Gives ``datamodule`` what ``needs`` names; returns the run record's ``teacher`` entry."""
    record: dict[str, Any] = {"kind": teacher.fingerprint()["kind"], "provides": sorted(needs)}
    if "teacher_pairs" in needs:
        pairs = datamodule.scored_pairs()
        scores, path, cached = cached_teacher_scores(teacher, datamodule.dataset, split, pairs, doc_template, cache_dir)
        datamodule.teacher_scores = scores
        log.info("teacher %s: %d pairs from %s (cache %s)", record["kind"], len(pairs), path,
                 "hit" if cached["cache_hit"] else "miss")
        record["scores"] = {"file": str(path), **cached}
    if "teacher_query" in needs:
        if not isinstance(teacher, BiEncoderTeacher):
            raise ValueError(f"the objective distils query embeddings: it needs teacher=bi_encoder, not {record['kind']}")
        query_ids = sorted({p.query_id for p in datamodule.pairs})
        embeddings = teacher.query_embeddings(datamodule.dataset, query_ids)
        datamodule.teacher_query = dict(zip(query_ids, embeddings))
        record["query_embeddings"] = {"queries": len(query_ids), "dim": int(embeddings.shape[1])}
    if "teacher_batch" in needs:
        raise ValueError("in-batch teacher scores (objective=dual_teacher) are not available yet")
    return record
