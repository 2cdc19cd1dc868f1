"""Hybrid retrieval: several retrievers (BM25 and a dense index, say) search alone, and ranx's
``fuse`` merges their runs (score normalization, then RRF, a weighted sum, CombSUM, ...).

:class:`HybridIndex` is what ``conf/index/hybrid.yaml`` builds: the components' configs and the
fusion. The index stage builds each component into its own sub-directory of ``index/`` and gives
a :class:`HybridRetriever`; its :class:`CompositeRetrieval` keeps every component's run beside the
fused one, for the evaluator to write and score.
"""

import inspect
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from retrieval_lab.config.rules import Param
from retrieval_lab.evaluation.trec import trec_order
from retrieval_lab.retrievers.base import Retrieval, Retriever
from retrieval_lab.search import Run

# ranx's fusion methods that need no training runs (probfuse, segfuse, ... learn from qrels).
FusionMethod = Literal["rrf", "wsum", "sum", "mnz", "anz", "max", "min", "med", "gmnz", "isr", "log_isr", "logn_isr",
                       "bordafuse", "w_bordafuse", "condorcet", "w_condorcet", "rbc", "mixed", "wmnz"]
WEIGHTED = frozenset({"wsum", "wmnz", "mixed", "w_bordafuse", "w_condorcet"})  # ranx methods taking ``weights``
# Those that read only each document's rank: ranx ranks tied scores in arbitrary order, so they are
# given trec_eval's ranks as scores (ties by doc id), as retrieval_lab.evaluation.metrics does.
RANK_BASED = frozenset({"rrf", "isr", "log_isr", "logn_isr", "rbc", "bordafuse", "w_bordafuse", "condorcet",
                        "w_condorcet"})
Norm = Literal["min-max", "max", "sum", "zmuv", "rank", "borda"]
# Names the evaluator gives runs of its own beside the components' (run_<name>.trec).
RESERVED_NAMES = frozenset({"fused", "first_round", "first_stage"})


@dataclass
class CompositeRetrieval(Retrieval):
    """A run made from others: ``parts`` (named, e.g. a hybrid's components) are written and
    scored beside it, ``record`` (how they were combined) goes into ``metrics.json``."""

    parts: dict[str, Retrieval] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)


class Fusion:
    """ranx's ``fuse(runs, norm, method, params)`` over named runs.

    ``weights`` (component name -> weight) feed the weighted methods (``WEIGHTED``), equal where
    None; ``params`` are the method's other arguments (rrf's ``k``, default 60).
    """

    def __init__(self, method: FusionMethod, norm: Norm | None, weights: dict[str, float] | None = None,
                 params: dict[str, Any] | None = None) -> None:
        self.method = method
        self.norm = norm
        self.weights = dict(weights) if weights else None
        self.params = dict(params or {})

    def fuse(self, runs: dict[str, Run], k: int) -> Run:
        """The fused run, each query's top ``k`` (ties by doc id, as trec_eval). A run that
        retrieved nothing at all is left out (ranx cannot hold it)."""
        queries = list(next(iter(runs.values())))
        runs = {name: run for name, run in runs.items() if any(run.values())}
        if not runs:
            return {q: {} for q in queries}
        if len(runs) == 1:  # ranx fuses two or more; one run is its own fusion
            (run,) = runs.values()
            return {q: dict(trec_order(run.get(q, {}))[:k]) for q in queries}
        if self.method in RANK_BASED:
            runs = {name: {q: _rank_scores(docs) for q, docs in run.items()} for name, run in runs.items()}
        params = dict(self.params)
        if self.method in WEIGHTED:
            params["weights"] = [self.weights[n] if self.weights else 1 / len(runs) for n in runs]
        # Imported here: ranx (numba) takes seconds to import, which only a hybrid run should pay.
        import ranx
        from numba.core.errors import NumbaTypeSafetyWarning

        with warnings.catch_warnings():  # ranx's normalizations cast uint64 counts to int64, harmlessly
            warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
            fused = ranx.fuse([ranx.Run(run) for run in runs.values()], norm=self.norm, method=self.method,
                              params=params).to_dict()
        return {q: dict(trec_order(fused.get(q, {}))[:k]) for q in queries}

    def as_record(self) -> dict[str, Any]:
        """What made the fused run (``index.json`` keeps it, ``metrics.json`` reports it)."""
        return {"method": self.method, "norm": self.norm, "weights": self.weights, "params": self.params}


def _rank_scores(docs: dict[str, float]) -> dict[str, float]:
    """n, n - 1, ..., 1 in trec_eval's order of ``docs``."""
    order = trec_order(docs)
    return {doc: float(len(order) - i) for i, (doc, _) in enumerate(order)}


def _components_problem(components: Any, node: Mapping[str, Any], run: dict[str, Any]) -> str | None:
    if not isinstance(components, Mapping) or len(components) < 2:
        return "needs two or more retrievers, by name (components.bm25, components.dense, ...)"
    for name in components:
        if not str(name).isidentifier() or name in RESERVED_NAMES:
            return (f"component name {name!r} must be an identifier other than {sorted(RESERVED_NAMES)} "
                    "(it names the component's run file, run_<name>.trec)")
    return None


def _alpha_problem(alpha: Any, node: Mapping[str, Any], run: dict[str, Any]) -> str | None:
    if alpha is None:
        return None
    if node.get("fusion") not in WEIGHTED:
        return f"set, but fusion {node.get('fusion')!r} takes no weights (one of {sorted(WEIGHTED)} does)"
    if len(node.get("components") or {}) != 2:
        return "weighs the first of two components against the second: with more, set weights"
    if node.get("weights") is not None:
        return "set together with weights: set one of them"
    return None if 0 <= alpha <= 1 else f"must be within [0, 1], got {alpha!r}"


def _weights_problem(weights: Any, node: Mapping[str, Any], run: dict[str, Any]) -> str | None:
    if weights is None:
        return None
    if node.get("fusion") not in WEIGHTED:
        return f"set, but fusion {node.get('fusion')!r} takes no weights (one of {sorted(WEIGHTED)} does)"
    names = list(node.get("components") or {})
    if sorted(weights) != sorted(names):
        return f"must give one weight per component, {names}; got {sorted(weights)}"
    return None


def _params_problem(params: Any, node: Mapping[str, Any], run: dict[str, Any]) -> str | None:
    if not params:
        return None
    from ranx.fusion import fusion_switch  # see Fusion.fuse

    method = node.get("fusion")
    takes = set(inspect.signature(fusion_switch(method)).parameters) - {"runs", "name", "weights"}
    unknown = sorted(set(params) - takes)
    if unknown:
        return f"{unknown} not taken by ranx's {method} (it takes: {', '.join(sorted(takes)) or 'nothing'})"
    return None


class HybridIndex:
    """The components (configs of other indexes, by name) and how their runs are fused.

    Args:
        components: name -> an index config (``conf/index/``: BM25, a vector index over the run
            model's embeddings, ...).
        fusion: a ranx fusion method: ``rrf`` (reciprocal rank fusion, 1 / (k + rank) summed),
            ``wsum`` (interpolation: weighted sum of normalized scores), ``sum`` (CombSUM),
            ``mnz`` (CombMNZ), ...
        norm: ranx's score normalization of each run before fusing (``min-max``, ``zmuv``,
            ``sum``, ...; null: raw scores).
        alpha: with two components and a weighted method, the first's weight (the second's is
            1 - alpha).
        weights: name -> weight, for any number of components (null and no alpha: equal).
        params: the method's other arguments (e.g. ``{k: 60}`` for rrf).
    """

    kind: ClassVar[str] = "hybrid"
    rules: ClassVar[tuple[Param, ...]] = (
        Param("components", _components_problem), Param("alpha", _alpha_problem),
        Param("weights", _weights_problem), Param("params", _params_problem),
    )

    def __init__(self, components: dict[str, Any], fusion: FusionMethod = "rrf", norm: Norm | None = "min-max",
                 alpha: float | None = None, weights: dict[str, float] | None = None,
                 params: dict[str, Any] | None = None) -> None:
        self.components = {str(name): component for name, component in components.items()}
        if alpha is not None:
            first, second = self.components
            weights = {first: float(alpha), second: 1 - float(alpha)}
        self.fusion = Fusion(fusion, norm, weights, params)


class HybridRetriever(Retriever):
    """Each component retrieves the queries' top ``k``; :class:`Fusion` merges the runs."""

    kind: ClassVar[str] = HybridIndex.kind

    def __init__(self, components: dict[str, Retriever], fusion: Fusion) -> None:
        self.components = components
        self.fusion = fusion

    def record(self) -> dict[str, Any]:
        return {"components": {name: c.kind for name, c in self.components.items()}, **self.fusion.as_record()}

    def retrieve(self, queries: dict[str, str], k: int) -> CompositeRetrieval:
        parts = {name: component.retrieve(queries, k) for name, component in self.components.items()}
        start = time.perf_counter()
        run = self.fusion.fuse({name: part.run for name, part in parts.items()}, k)
        seconds = time.perf_counter() - start + sum(part.seconds for part in parts.values())
        return CompositeRetrieval(run, seconds, parts=parts, record={"fusion": self.record()})

    def profile(self, queries: dict[str, str], retrieval: Retrieval, k: int,
                latency_queries: int) -> dict[str, Any]:
        """Each component's profile, by name."""
        assert isinstance(retrieval, CompositeRetrieval)
        return {name: component.profile(queries, retrieval.parts[name], k, latency_queries)
                for name, component in self.components.items()}
