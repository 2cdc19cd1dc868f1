"""Teachers for distillation: they score (query, document) pairs once, before training."""

from retrieval_lab.teachers.bi_encoder import BiEncoderTeacher
from retrieval_lab.teachers.bm25 import BM25Teacher
from retrieval_lab.teachers.cross_encoder import CrossEncoderTeacher
from retrieval_lab.teachers.ensemble import EnsembleTeacher, normalize_per_query
from retrieval_lab.teachers.file import ScoresFileTeacher
from retrieval_lab.teachers.score_cache import cached_teacher_scores, scores_key
from retrieval_lab.teachers.scores_file import read_scores, write_scores
from retrieval_lab.teachers.teacher import Teacher

__all__ = ["BM25Teacher", "BiEncoderTeacher", "CrossEncoderTeacher", "EnsembleTeacher", "ScoresFileTeacher", "Teacher",
           "cached_teacher_scores", "normalize_per_query", "read_scores", "scores_key", "write_scores"]
