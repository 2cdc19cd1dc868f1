from retrieval_lab.objectives.infonce import InfoNCE

__all__ = ["InfoNCE"]
