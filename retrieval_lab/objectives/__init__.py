from retrieval_lab.objectives.base import Need, Objective
from retrieval_lab.objectives.cross_encoder import ListwiseCE, PointwiseBCE
from retrieval_lab.objectives.dual_teacher import DualTeacher
from retrieval_lab.objectives.embed_distill import EmbeddingDistillation
from retrieval_lab.objectives.infonce import InfoNCE
from retrieval_lab.objectives.inputs import LossInputs, MissingInput
from retrieval_lab.objectives.kl_listwise import ListwiseKL
from retrieval_lab.objectives.margin_mse import MarginMSE
from retrieval_lab.objectives.weighted_sum import WeightedSum

__all__ = ["DualTeacher", "EmbeddingDistillation", "InfoNCE", "ListwiseCE", "ListwiseKL", "LossInputs",
           "MarginMSE", "MissingInput", "Need", "Objective", "PointwiseBCE", "WeightedSum"]
