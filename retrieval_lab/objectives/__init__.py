from retrieval_lab.objectives.dual_teacher import DualTeacher
from retrieval_lab.objectives.embed_distill import EmbeddingDistillation
from retrieval_lab.objectives.infonce import InfoNCE
from retrieval_lab.objectives.kl_listwise import ListwiseKL
from retrieval_lab.objectives.margin_mse import MarginMSE

__all__ = ["DualTeacher", "EmbeddingDistillation", "InfoNCE", "ListwiseKL", "MarginMSE"]
