"""Stage ``teach``: before training, the teachers give what the objective reads (its ``needs``):
scores of every pair the training can show (cached: a teacher that scored the same pairs before
is not asked again), query embeddings for embedding distillation, or an in-batch teacher's
embeddings of every query and document the batches can hold, from which each batch gets the
teacher's score of every query against every column (TAS-B's second teacher)."""

import logging
from pathlib import Path
from typing import Any

from retrieval_lab.teachers import BiEncoderTeacher, Teacher, cached_teacher_scores
from retrieval_lab.training.datamodule import ContrastiveDataModule
from retrieval_lab.training.query_distillation import QueryDistillationDataModule

log = logging.getLogger(__name__)


def teach(teacher: Teacher | None, needs: frozenset[str], datamodule: ContrastiveDataModule | QueryDistillationDataModule,
          split: str,
          doc_template: str, cache_dir: str | Path, in_batch_teacher: Teacher | None = None) -> dict[str, Any]:
    """Gives ``datamodule`` what ``needs`` names; returns the run record's ``teacher`` entry."""
    record: dict[str, Any] = {"provides": sorted(needs)}
    if teacher is not None:
        record["kind"] = teacher.fingerprint()["kind"]
    elif needs - {"teacher_batch"}:
        raise ValueError(f"the objective needs {sorted(needs - {'teacher_batch'})} from a teacher: set teacher=...")
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
        if isinstance(datamodule, QueryDistillationDataModule):
            datamodule.teacher_query = embeddings = teacher.embed_queries(datamodule.texts)
            record["query_embeddings"] = {"queries": datamodule.num_queries,
                                          "pseudo_queries": len(datamodule.texts) - datamodule.num_queries,
                                          "dim": int(embeddings.shape[1])}
        else:
            query_ids = sorted({p.query_id for p in datamodule.pairs})
            embeddings = teacher.query_embeddings(datamodule.dataset, query_ids)
            datamodule.teacher_query = dict(zip(query_ids, embeddings))
            record["query_embeddings"] = {"queries": len(query_ids), "dim": int(embeddings.shape[1])}
    if "teacher_batch" in needs:
        record["in_batch"] = _in_batch_embeddings(in_batch_teacher, datamodule, doc_template)
    return record


def _in_batch_embeddings(teacher: Teacher | None, datamodule: ContrastiveDataModule,
                         doc_template: str) -> dict[str, Any]:
    """Embeds, once, every training query and every document a batch can hold (positives and the
    negative pools) with the in-batch teacher: a bi-encoder, whose B x N scores per batch are one
    matrix product (a cross-encoder would have to run on every query-column pair of every batch)."""
    if not isinstance(teacher, BiEncoderTeacher):
        raise ValueError("the objective reads in-batch teacher scores: set in_batch_teacher to a bi-encoder "
                         f"teacher, not {type(teacher).__name__ if teacher is not None else None}")
    pairs = datamodule.scored_pairs()
    query_ids = sorted({q for q, _ in pairs})
    doc_ids = sorted({d for _, d in pairs})
    queries = teacher.query_embeddings(datamodule.dataset, query_ids)
    docs = teacher.doc_embeddings(datamodule.dataset, doc_ids, doc_template)
    datamodule.in_batch_teacher = (dict(zip(query_ids, queries)), dict(zip(doc_ids, docs)))
    log.info("in-batch teacher: %d queries, %d documents embedded", len(query_ids), len(doc_ids))
    return {**teacher.fingerprint(), "queries": len(query_ids), "documents": len(doc_ids)}
