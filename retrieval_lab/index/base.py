"""The index abstraction: build, search, save and load, whatever the structure underneath."""

import os
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from retrieval_lab.atomic import atomic_path
from retrieval_lab.index.saved import IndexMismatchError, check_expected, read_index_info, save_index_dir
_KINDS: dict[str, type["Index"]] = {}


def recall_vs_exact(exact_rows: np.ndarray, approx_rows: np.ndarray, k: int) -> float:
    """Fraction of the exact top-k rows found in the approximate top-k, averaged over queries.

    Rows of -1 (fewer than k found) are not results: an exact list shorter than k counts only
    its real rows, and -1 in the approximate list never matches.
    """
    if len(exact_rows) != len(approx_rows):
        raise ValueError(f"{len(exact_rows)} exact result lists but {len(approx_rows)} approximate")
    recalls = []
    for exact, approx in zip(exact_rows[:, :k], approx_rows[:, :k]):
        truth = set(exact[exact >= 0].tolist())
        recalls.append(len(truth.intersection(approx.tolist())) / len(truth))
    return float(np.mean(recalls))


def _as_matrix(x: np.ndarray, dim: int, what: str) -> np.ndarray:
    """``x`` as a contiguous float32 [n, dim] matrix (what faiss needs), or a ValueError."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{what} must be [n, {dim}], got shape {x.shape}")
    return x


class Index(ABC):
    """Inner-product search over float32 embeddings; rows are numbered in insertion order.

    Subclasses set ``kind`` (the name ``index.json`` records and :meth:`load` dispatches on) and
    ``params`` (their constructor's keyword arguments besides ``dim``: :meth:`load` passes them
    back, so a loaded index searches with the parameters it was saved with).
    """

    kind: ClassVar[str]
    file_name: ClassVar[str] = "index.faiss"
    params: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            _KINDS[cls.kind] = cls

    def __init__(self, dim: int) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        self.build_seconds: float | None = None

    def build(self, embeddings: np.ndarray) -> None:
        """Train (types that need it) and add every row of ``embeddings``; times both."""
        if self.size:
            raise RuntimeError(f"{self.kind} index already holds {self.size} rows; make a new one")
        x = _as_matrix(embeddings, self.dim, "embeddings")
        if not len(x):
            raise ValueError("cannot build an index from 0 embeddings")
        start = time.perf_counter()
        self._build(x)
        self.build_seconds = time.perf_counter() - start

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and rows [n_queries, min(k, size)], best first; row -1 where fewer were found."""
        q = _as_matrix(queries, self.dim, "queries")
        k = min(k, self.size)
        if k <= 0:
            return np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64)
        return self._search(q, k)

    @property
    @abstractmethod
    def size(self) -> int:
        """Number of rows added."""

    @abstractmethod
    def nbytes(self) -> int:
        """Size of the serialized index in bytes (what :meth:`save` writes to ``file_name``)."""

    def fixed_nbytes(self) -> int:
        """Bytes of :meth:`nbytes` that do not grow with the corpus: trained quantizers, rotations,
        headers. ``(nbytes() - fixed_nbytes()) / size`` is what each document costs, the size
        that matters at scale (a small corpus is dominated by codebooks)."""
        return 0

    @abstractmethod
    def _build(self, x: np.ndarray) -> None: ...

    @abstractmethod
    def _search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def _write(self, path: Path) -> None: ...

    @abstractmethod
    def _read(self, path: Path, info: dict[str, Any]) -> None:
        """Replace the (empty, freshly constructed) structure with the one saved at ``path``."""

    def _details(self) -> dict[str, Any]:
        """Facts about the built index that its params do not tell, for ``index.json``."""
        return {}

    def save(self, directory: str | Path, metadata: dict[str, Any]) -> None:
        """Write ``file_name`` and ``index.json`` (with ``metadata``, e.g. the embeddings' key).

        The index file goes through a temp file and ``os.replace``, ``index.json`` last
        (:func:`~retrieval_lab.index.saved.save_index_dir`), so a crash never leaves a
        description of other data.
        """
        info = {"kind": self.kind, "dim": self.dim, "metric": "ip", "params": self.params,
                "size": self.size, "nbytes": 0, "build_seconds": self.build_seconds,
                **self._details()}

        def write_files(directory: Path) -> None:
            with atomic_path(directory / self.file_name) as tmp:
                self._write(tmp)
                info["nbytes"] = os.path.getsize(tmp)

        save_index_dir(directory, info, metadata, write_files)

    @classmethod
    def load(cls, directory: str | Path, expected: dict[str, Any]) -> "Index":
        """The index saved in ``directory``, as the subclass that saved it.

        Raises :class:`IndexMismatchError` when a key of ``expected`` (compared as JSON values,
        e.g. ``{"dim": 384, "embeddings_key": ...}``) differs from the saved metadata, or when
        the saved kind is not a ``cls`` (``FlatIndex.load`` never returns an HNSW index).
        """
        info = read_index_info(directory)
        check_expected(directory, info, expected)
        subclass = _KINDS.get(info["kind"])
        if subclass is None or not issubclass(subclass, cls):
            raise IndexMismatchError(
                f"index in {directory} has kind={info['kind']!r}, expected a {cls.__name__}"
            )
        index = subclass(dim=info["dim"], **info["params"])
        index._read(Path(directory) / subclass.file_name, info)
        index.build_seconds = info["build_seconds"]
        return index
