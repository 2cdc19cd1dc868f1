from retrieval_lab.models.bi_encoder import BiEncoder

__all__ = ["BiEncoder"]
