"""Stage ``teach``: before training, the teachers give the training set what the objective reads
(its ``needs``): scores of every pair the training can show (cached: a teacher that scored the
same pairs before is not asked again), query embeddings for embedding distillation, or an in-batch
teacher's embeddings of every query and document the batches can hold, from which each batch gets
the teacher's score of every query against every column (TAS-B's second teacher)."""

import logging
from pathlib import Path
from typing import Any

from retrieval_lab.objectives.base import Need
from retrieval_lab.teachers import BiEncoderTeacher, Teacher, cached_teacher_scores
from retrieval_lab.training.training_set import InBatchTeacher, TrainingSet

log = logging.getLogger(__name__)


def teach(training_set: TrainingSet, needs: frozenset[Need], teacher: Teacher | None, cache_dir: str | Path,
          in_batch_teacher: Teacher | None = None) -> tuple[TrainingSet, dict[str, Any]]:
    """``training_set`` with what ``needs`` names, and the run record's ``teacher`` entry."""
    record: dict[str, Any] = {"provides": sorted(needs)}
    if teacher is not None:
        record["kind"] = teacher.fingerprint()["kind"]
    elif needs - {Need.TEACHER_BATCH}:
        raise ValueError(f"the objective needs {sorted(needs - {Need.TEACHER_BATCH})} from a teacher: set teacher=...")
    given: dict[str, Any] = {}
    if Need.TEACHER_PAIRS in needs:
        pairs = training_set.scored_pairs()
        given["teacher_scores"], path, cached = cached_teacher_scores(
            teacher, training_set.dataset, training_set.split, pairs, training_set.doc_template, cache_dir)
        log.info("teacher %s: %d pairs from %s (cache %s)", record["kind"], len(pairs), path,
                 "hit" if cached["cache_hit"] else "miss")
        record["scores"] = {"file": str(path), **cached}
    if Need.TEACHER_QUERY in needs:
        if not isinstance(teacher, BiEncoderTeacher):
            raise ValueError(f"the objective distils query embeddings: it needs teacher=bi_encoder, not {record['kind']}")
        query_ids = list(training_set.queries)
        embeddings = teacher.embed_queries(list(training_set.queries.values()))
        given["teacher_query"] = dict(zip(query_ids, embeddings))
        pseudo = training_set.pseudo_queries
        record["query_embeddings"] = {"queries": len(query_ids) - pseudo, "pseudo_queries": pseudo,
                                      "dim": int(embeddings.shape[1])}
    if Need.TEACHER_BATCH in needs:
        given["in_batch_teacher"], record["in_batch"] = _in_batch_embeddings(in_batch_teacher, training_set)
    return training_set.with_teaching(**given), record


def _in_batch_embeddings(teacher: Teacher | None, training_set: TrainingSet) -> tuple[InBatchTeacher, dict[str, Any]]:
    """Embeds, once, every training query and every document a batch can hold (positives and the
    negative pools) with the in-batch teacher: a bi-encoder, whose B x N scores per batch are one
    matrix product (a cross-encoder would have to run on every query-column pair of every batch)."""
    if not isinstance(teacher, BiEncoderTeacher):
        raise ValueError("the objective reads in-batch teacher scores: set in_batch_teacher to a bi-encoder "
                         f"teacher, not {type(teacher).__name__ if teacher is not None else None}")
    pairs = training_set.scored_pairs()
    query_ids = sorted({q for q, _ in pairs})
    doc_ids = sorted({d for _, d in pairs})
    queries = teacher.query_embeddings(training_set.dataset, query_ids)
    docs = teacher.doc_embeddings(training_set.dataset, doc_ids, training_set.doc_template)
    log.info("in-batch teacher: %d queries, %d documents embedded", len(query_ids), len(doc_ids))
    return (InBatchTeacher(dict(zip(query_ids, queries)), dict(zip(doc_ids, docs))),
            {**teacher.fingerprint(), "queries": len(query_ids), "documents": len(doc_ids)})
