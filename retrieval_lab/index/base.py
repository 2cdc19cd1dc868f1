"""The index abstraction: build, search, save and load, whatever the structure underneath."""

import json
import os
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from retrieval_lab.atomic import atomic_path, atomic_write_json

INFO_FILE = "index.json"
_KINDS: dict[str, type["Index"]] = {}


class IndexMismatchError(ValueError):
    """A saved index does not match what the caller expects (another model, corpus or dim)."""


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


def first_difference(key: str, got: Any, want: Any) -> tuple[str | None, Any, Any]:
    """(dotted key, saved, expected) of the first difference between saved metadata and what a
    load expects, compared as JSON values; (None, ...) when equal."""
    if isinstance(got, dict) and isinstance(want, dict):
        for sub in list(want) + [s for s in got if s not in want]:
            where, g, w = first_difference(f"{key}.{sub}", got.get(sub), want.get(sub))
            if where is not None:
                return where, g, w
        return None, got, want
    same = json.loads(json.dumps(got)) == json.loads(json.dumps(want))
    return (None if same else key), got, want


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

        Each file goes through a temp file and ``os.replace``; ``index.json`` is removed first
        and written last, so a crash leaves either a complete pair or no ``index.json`` (which
        :meth:`load` refuses), never a description of other data.
        """
        directory = Path(directory)
        info = {"kind": self.kind, "dim": self.dim, "metric": "ip", "params": self.params,
                "size": self.size, "nbytes": 0, "build_seconds": self.build_seconds,
                **self._details()}
        clash = sorted(info.keys() & metadata.keys())
        if clash:
            raise ValueError(f"metadata may not set the index's own fields {clash}")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / INFO_FILE).unlink(missing_ok=True)
        with atomic_path(directory / self.file_name) as tmp:
            self._write(tmp)
            info["nbytes"] = os.path.getsize(tmp)
        atomic_write_json(directory / INFO_FILE, {**info, **metadata})

    @classmethod
    def load(cls, directory: str | Path, expected: dict[str, Any]) -> "Index":
        """The index saved in ``directory``, as the subclass that saved it.

        Raises :class:`IndexMismatchError` when a key of ``expected`` (compared as JSON values,
        e.g. ``{"dim": 384, "embeddings_key": ...}``) differs from the saved metadata, or when
        the saved kind is not a ``cls`` (``FlatIndex.load`` never returns an HNSW index).
        """
        directory = Path(directory)
        if not (directory / INFO_FILE).is_file():
            raise IndexMismatchError(f"no saved index in {directory} ({INFO_FILE} is missing)")
        info = json.loads((directory / INFO_FILE).read_text())
        for key, want in expected.items():
            where, got, want = first_difference(key, info.get(key), want)
            if where is not None:
                raise IndexMismatchError(f"index in {directory} has {where}={got!r}, expected {want!r}")
        subclass = _KINDS.get(info["kind"])
        if subclass is None or not issubclass(subclass, cls):
            raise IndexMismatchError(
                f"index in {directory} has kind={info['kind']!r}, expected a {cls.__name__}"
            )
        index = subclass(dim=info["dim"], **info["params"])
        index._read(directory / subclass.file_name, info)
        index.build_seconds = info["build_seconds"]
        return index
