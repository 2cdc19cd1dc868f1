"""faiss indexes described by an ``index_factory`` spec, and the named types built from one.

The named types only translate their typed parameters into a spec and search parameters, so a
config typo (``nlsit``) is caught by the config validator instead of being passed to faiss.
"""

import logging
import re
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from retrieval_lab.config.model_source import embedding_dim
from retrieval_lab.config.rules import Param
from retrieval_lab.index.base import Index
from retrieval_lab.index.faiss_device import device_problem, on_device, to_cpu
from retrieval_lab.index.nprobe import tuned_nprobe

log = logging.getLogger(__name__)

DEFAULT_TRAIN_SIZE = 100_000
"""Rows sampled to train quantizers: 39 per list up to nlist 2564, ample for 8-bit PQ codebooks
(256 centroids per sub-quantizer), and bounded so training stays short on million-row corpora."""

TUNING_QUERIES = 1000
"""Corpus vectors used as queries to choose an IVF index's nprobe (index/nprobe.py)."""

MIN_POINTS_PER_LIST = 39
"""faiss's k-means warns below 39 training points per centroid: the lists come out poor."""


class FaissIndex(Index):
    """Any ``faiss.index_factory(dim, spec, METRIC_INNER_PRODUCT)`` index.

    Args:
        spec: faiss index_factory string, e.g. ``"OPQ64,IVF256,PQ64x4fsr"`` or ``"HNSW32,Flat"``.
        nprobe: IVF lists searched per query (recall vs speed); the index must have IVF lists.
        ef_search: HNSW candidate list per query (recall vs speed); the index must be HNSW.
        train_size: training (for indexes that need it) uses at most this many rows, sampled
            with seed 0.
        device: ``cpu``, or ``gpu`` where the faiss build has GPUs (index/faiss_device.py); an
            index loaded back searches on the CPU.
        target_recall: with ``nprobe`` null, an IVF index's nprobe is chosen when it is built,
            the fewest lists (a power of two) whose recall@10 against exact search on 1,000
            corpus vectors reaches this share of searching every list's (index/nprobe.py);
            ``params`` then hold the chosen one.

    An IVF spec whose nlist needs more training rows than there are (39 per list) is built with
    nlist = rows // 39 and a logged warning rather than with poorly trained lists;
    ``index.json`` records the spec actually built as ``"spec"``. PQ codebooks are not adjusted
    (nbits fixes the code size): with fewer than 39 * 2**nbits rows faiss prints its warning.
    """

    rules = (Param("spec", lambda spec, node, run: _spec_problem(spec, run)),
             Param("device", lambda device, node, run: device_problem(device, _node_spec(node))))

    kind = "factory"

    def __init__(
        self,
        dim: int,
        spec: str,
        nprobe: int | None = None,
        ef_search: int | None = None,
        train_size: int = DEFAULT_TRAIN_SIZE,
        device: str = "cpu",
        target_recall: float | None = None,
    ) -> None:
        super().__init__(dim)
        if train_size <= 0:
            raise ValueError(f"train_size must be positive, got {train_size}")
        problem = device_problem(device, spec)
        if problem is not None:
            raise ValueError(f"device: {problem}")
        if target_recall is not None and not 0 < target_recall <= 1:
            raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
        self.device = device
        self.target_recall = target_recall if nprobe is None and "IVF" in spec else None
        self.nprobe_tuning: dict[str, Any] | None = None
        self.spec = spec
        self.train_size = train_size
        # (our name, faiss ParameterSpace name, value) of each search parameter that is set
        self._search_params = [
            (name, faiss_name, value)
            for name, faiss_name, value in [("nprobe", "nprobe", nprobe),
                                            ("ef_search", "efSearch", ef_search)]
            if value is not None
        ]
        self.faiss_index = self._make(spec)  # the CPU copy: saved, measured
        self._searcher = self.faiss_index  # where it searches (index.device)
        self.params: dict[str, Any] = {"spec": spec, "nprobe": nprobe, "ef_search": ef_search,
                                       "train_size": train_size}

    def _make(self, spec: str) -> faiss.Index:
        try:
            index = faiss.index_factory(self.dim, spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as err:
            raise ValueError(f"faiss cannot make {spec!r} of dim {self.dim}: {_faiss_reason(err)}") from None
        # Polysemous training orders PQ codes for Hamming-filtered search, which is never used
        # here; faiss turns it on for 8-bit PQ and it costs seconds on every build.
        inner = index
        while isinstance(inner, faiss.IndexPreTransform):
            inner = faiss.downcast_index(inner.index)
        if hasattr(inner, "do_polysemous_training"):
            inner.do_polysemous_training = False
        self._set_search_params(index)
        return index

    def _set_search_params(self, index: faiss.Index) -> None:
        space = faiss.ParameterSpace()
        for name, faiss_name, value in self._search_params:
            try:
                space.set_index_parameter(index, faiss_name, value)
            except RuntimeError:
                raise ValueError(f"{name} does not apply to a {self.spec!r} index") from None

    @property
    def size(self) -> int:
        return self.faiss_index.ntotal

    def nbytes(self) -> int:
        return int(faiss.serialize_index(self.faiss_index).nbytes)

    def fixed_nbytes(self) -> int:
        empty = faiss.clone_index(self.faiss_index)
        empty.reset()  # drops the vectors, keeps what training learned
        return int(faiss.serialize_index(empty).nbytes)

    def _build(self, x: np.ndarray) -> None:
        sample = x
        if not self.faiss_index.is_trained:
            if len(x) > self.train_size:
                rows = np.random.default_rng(0).choice(len(x), self.train_size, replace=False)
                sample = x[np.sort(rows)]
            self._fit_nlist(len(sample))
        placed = on_device(self.faiss_index, self.device)
        if not placed.is_trained:
            placed.train(sample)
        placed.add(x)
        if self.target_recall is not None:
            queries = min(TUNING_QUERIES, len(x))
            nprobe, recall, ceiling = tuned_nprobe(placed, x, self.target_recall, queries)
            self._search_params = [("nprobe", "nprobe", nprobe)]
            self.params["nprobe"] = nprobe
            self.nprobe_tuning = {"target_recall": self.target_recall, "recall_at_10": round(recall, 4),
                                  "every_list_recall_at_10": round(ceiling, 4), "queries": queries, "nprobe": nprobe}
            log.info("nprobe %d of %d lists: recall@10 %.3f against exact search on %d corpus vectors, "
                     "%.3f searching every list (target: %.3f of it)", nprobe, faiss.extract_index_ivf(placed).nlist,
                     recall, queries, ceiling, self.target_recall)
        self._searcher, self.faiss_index = placed, to_cpu(placed, self.device)

    def _fit_nlist(self, n_train: int) -> None:
        match = re.search(r"IVF(\d+)", self.spec)
        if match is None:
            return
        nlist, fitted = int(match[1]), max(1, n_train // MIN_POINTS_PER_LIST)
        if nlist <= fitted:
            return
        spec = f"{self.spec[:match.start(1)]}{fitted}{self.spec[match.end(1):]}"
        log.warning("nlist %d needs %d training rows, only %d available: building %r instead of %r",
                    nlist, nlist * MIN_POINTS_PER_LIST, n_train, spec, self.spec)
        self.spec = spec
        self.faiss_index = self._make(spec)

    def _search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._searcher.search(q, k)

    def _write(self, path: Path) -> None:
        faiss.write_index(self.faiss_index, str(path))

    def _read(self, path: Path, info: dict[str, Any]) -> None:
        self.spec = info["spec"]
        self.faiss_index = faiss.read_index(str(path))
        self._set_search_params(self.faiss_index)
        self._searcher = self.faiss_index

    def _details(self) -> dict[str, Any]:
        return {"spec": self.spec, **({"nprobe_tuning": self.nprobe_tuning} if self.nprobe_tuning else {})}


def _faiss_reason(err: RuntimeError) -> str:
    """faiss's message without its C++ source location."""
    return re.sub(r"^Error in .*? at \S+:\d+: ", "", str(err).strip())


def _node_spec(node: Any) -> str:
    """The faiss spec an index config node builds (the named types' spec is their kind's)."""
    return str(node.get("spec") or node.get("_target_", ""))


def _built_dim(run: dict[str, Any]) -> int | None:
    """The dimension the index stage builds an index of: the run model's embeddings' (None
    without an index stage, or where the size is not known before the run)."""
    return embedding_dim(run.get("model")) if "index" in run.get("stages", ()) else None


def _spec_problem(spec: str, run: dict[str, Any]) -> str | None:
    dim = _built_dim(run)
    if dim is None:
        return None
    try:
        faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)  # no training: cheap
    except RuntimeError as err:
        return f"faiss cannot make {spec!r} for the model's {dim}-dimensional embeddings: {_faiss_reason(err)}"
    return None


def _sub_quantizers_problem(m: int, run: dict[str, Any]) -> str | None:
    dim = _built_dim(run)
    if dim is None or (m > 0 and dim % m == 0):
        return None
    divisors = [d for d in range(1, dim + 1) if dim % d == 0]
    return f"{m} sub-quantizers must divide the model's embedding dimension {dim} (one of {divisors})"


def _check_divides(dim: int, m: int) -> None:
    if m <= 0 or dim % m:
        raise ValueError(f"m={m} sub-quantizers must divide dim={dim}")


class HNSWIndex(FaissIndex):
    """HNSW graph over the full vectors (``IndexHNSWFlat``): no training, no compression.

    Args:
        M: neighbours per node; memory and recall grow with it.
        ef_construction: candidate list while inserting (build time vs graph quality).
        ef_search: candidate list per query (recall vs speed); faiss uses at least k.
    """

    kind = "hnsw"

    def __init__(
        self, dim: int, M: int = 32, ef_construction: int = 200, ef_search: int = 128, device: str = "cpu"
    ) -> None:
        super().__init__(dim, f"HNSW{M},Flat", ef_search=ef_search, device=device)
        self.faiss_index.hnsw.efConstruction = ef_construction
        self.params = {"M": M, "ef_construction": ef_construction, "ef_search": ef_search}


class IVFFlatIndex(FaissIndex):
    """Inverted lists of full vectors: k-means into ``nlist`` lists, ``nprobe`` searched per
    query (null: chosen at build for ``target_recall``, see :class:`FaissIndex`)."""

    kind = "ivf_flat"

    def __init__(self, dim: int, nlist: int = 256, nprobe: int | None = None, target_recall: float = 0.995,
                 train_size: int = DEFAULT_TRAIN_SIZE, device: str = "cpu") -> None:
        super().__init__(dim, f"IVF{nlist},Flat", nprobe=nprobe, train_size=train_size, device=device,
                         target_recall=target_recall)
        self.params = {"nlist": nlist, "nprobe": nprobe, "target_recall": target_recall, "train_size": train_size}


class IVFPQIndex(FaissIndex):
    """Inverted lists of product-quantized residuals: ``m * nbits / 8`` bytes per vector.

    Args:
        m: sub-quantizers; must divide dim (48 suits 384 and 768).
        nbits: bits per sub-quantizer code.
        nprobe, target_recall: as :class:`IVFFlatIndex` (the recall is the quantized index's).
    """

    rules = (*FaissIndex.rules, Param("m", lambda m, node, run: _sub_quantizers_problem(m, run)))

    kind = "ivf_pq"

    def __init__(self, dim: int, nlist: int = 256, m: int = 48, nbits: int = 8, nprobe: int | None = None,
                 target_recall: float = 0.995, train_size: int = DEFAULT_TRAIN_SIZE, device: str = "cpu") -> None:
        _check_divides(dim, m)
        super().__init__(dim, f"IVF{nlist},PQ{m}x{nbits}", nprobe=nprobe, train_size=train_size, device=device,
                         target_recall=target_recall)
        self.params = {"nlist": nlist, "m": m, "nbits": nbits, "nprobe": nprobe, "target_recall": target_recall,
                       "train_size": train_size}


class OPQPQIndex(FaissIndex):
    """A learned rotation (OPQ) then product quantization, searched exhaustively (no IVF).

    Args:
        m: sub-quantizers; must divide dim (48 suits 384 and 768).
        nbits: bits per sub-quantizer code.
    """

    rules = (*FaissIndex.rules, Param("m", lambda m, node, run: _sub_quantizers_problem(m, run)))

    kind = "opq_pq"

    def __init__(self, dim: int, m: int = 48, nbits: int = 8,
                 train_size: int = DEFAULT_TRAIN_SIZE, device: str = "cpu") -> None:
        _check_divides(dim, m)
        super().__init__(dim, f"OPQ{m},PQ{m}x{nbits}", train_size=train_size, device=device)
        self.params = {"m": m, "nbits": nbits, "train_size": train_size}


class SQ8Index(FaissIndex):
    """8-bit scalar quantization per dimension (ranges learned from the training sample),
    searched exhaustively."""

    kind = "sq8"

    def __init__(self, dim: int, train_size: int = DEFAULT_TRAIN_SIZE, device: str = "cpu") -> None:
        super().__init__(dim, "SQ8", train_size=train_size, device=device)
        self.params = {"train_size": train_size}
