"""Where a faiss index is trained, filled and searched: ``index.device: cpu`` (the default) or
``gpu``, every GPU faiss sees (``index_cpu_to_all_gpus``: one replica per GPU). The index saved
in the run, and every size reported, is its CPU copy. faiss-cpu, the build this project installs,
has no GPU code: ``gpu`` is then a config error, before any work. HNSW has no faiss GPU
implementation."""

import faiss

DEVICES = ("cpu", "gpu")


def device_problem(device: str, spec: str) -> str | None:
    """What keeps a ``spec`` index off ``device`` in this faiss build, or None."""
    if device not in DEVICES:
        return f"must be one of {list(DEVICES)}, got {device!r}"
    if device == "cpu":
        return None
    if not hasattr(faiss, "StandardGpuResources"):
        return (f"this faiss build ({faiss.__version__}, faiss-cpu) has no GPU support: install faiss-gpu "
                "(conda's faiss-gpu or pip's faiss-gpu-cu12), or set index.device=cpu")
    if faiss.get_num_gpus() == 0:
        return "faiss sees no GPU on this machine (faiss.get_num_gpus() is 0): set index.device=cpu"
    if "HNSW" in spec:
        return f"faiss has no GPU version of {spec!r} (HNSW): set index.device=cpu"
    return None


def on_device(index: faiss.Index, device: str) -> faiss.Index:
    """``index`` itself on the CPU, else its copy on every GPU."""
    return index if device == "cpu" else faiss.index_cpu_to_all_gpus(index)


def to_cpu(index: faiss.Index, device: str) -> faiss.Index:
    """The CPU copy of an index that ``on_device`` placed on ``device``."""
    return index if device == "cpu" else faiss.index_gpu_to_cpu(index)
