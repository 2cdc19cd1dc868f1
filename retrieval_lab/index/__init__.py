from retrieval_lab.index.flat import FlatIndex

__all__ = ["FlatIndex"]
