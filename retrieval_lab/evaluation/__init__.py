"""Run files and retrieval metrics."""

from retrieval_lab.evaluation.metrics import DEFAULT_METRICS, Qrels, evaluate
from retrieval_lab.evaluation.trec import Run, read_run, trec_order, write_run

__all__ = ["DEFAULT_METRICS", "Qrels", "Run", "evaluate", "read_run", "trec_order", "write_run"]
