"""Where a run came from: code version, package versions, hardware and data checksums.

Everything here goes into the run record (``run.json``) so that two runs can be compared, or one
re-run, knowing exactly what differed between them.
"""

import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

# The packages whose version can change a run's numbers.
PACKAGES = (
    "retrieval_lab", "torch", "transformers", "sentence-transformers", "tokenizers",
    "pytorch-lightning", "hydra-core", "omegaconf", "faiss-cpu", "numpy", "ranx", "pytrec-eval-terrier", "bm25s",
    "wandb", "optuna",
)


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def git_state(repo: Path) -> dict[str, Any] | None:
    """The commit checked out in ``repo`` (the project's, not the launch directory's) and whether the work tree differs from it (untracked,
    not ignored files count as a difference); None where ``repo`` is not a git work tree."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        changes = git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(changes), "changed_files": len(changes.splitlines())}


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def cpuinfo_field(name: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The first processor's ``name`` line of ``cpuinfo`` (Linux), or None."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def _cpu_model() -> str:
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": round(memory / 2**30, 1) if memory else None,
        "torch_threads": torch.get_num_threads(),
        "gpus": gpus,
        "cuda": torch.version.cuda if gpus else None,
    }


def data_checksums(dataset_path: Path, splits: list[str]) -> dict[str, str]:
    """sha256 of each BEIR file a run reads: corpus, queries and the qrels of ``splits``."""
    files = ["corpus.jsonl", "queries.jsonl", *(f"qrels/{split}.tsv" for split in splits)]
    return {name: file_sha256(dataset_path / name) for name in files}
