"""Validate a composed config before any work starts; every failure names the offending key."""

import importlib
import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from retrieval_lab.config.rules import component_class
from retrieval_lab.config.run_rules import RUN_RULES
from retrieval_lab.config.schema import STAGES, RunSchema
from retrieval_lab.models.base import Model
from retrieval_lab.models.cross_encoder import CrossEncoder
from retrieval_lab.objectives.base import Need, Objective
from retrieval_lab.objectives.weighted_sum import WeightedSum
from retrieval_lab.training.grad_cache import CONFIG_KEY as GRAD_CACHE_KEY, GradCache
from retrieval_lab.sampling.sampler import Sampler
from retrieval_lab.training.precision import AUTO


class ConfigError(ValueError):
    """A config value is unknown, mistyped or missing; ``key`` is its dotted path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first problem found, else return quietly."""
    try:
        OmegaConf.merge(OmegaConf.structured(RunSchema), cfg)
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:
        key = err.full_key or "<root>"
        raise ConfigError(key, str(err.msg).splitlines()[0]) from None
    unknown = [s for s in container["stages"] if s not in STAGES]
    if unknown:
        raise ConfigError("stages", f"unknown stage(s) {unknown}; choose from {list(STAGES)}")
    if "index" in container["stages"] and container["load_index"]:
        raise ConfigError("load_index", "set, but stages also builds an index: drop one of them")
    if container.get("benchmark") and container["load_index"]:
        raise ConfigError("load_index", "a saved index holds one corpus, and benchmark evaluates several: "
                          "drop load_index (each dataset's index is built, or found in the embedding cache)")
    if "evaluate" in container["stages"] and not ("index" in container["stages"] or container["load_index"]):
        raise ConfigError("stages", "evaluate needs an index: add index to stages, or set load_index")
    container = _check_grad_cache(container)
    _check_model_and_index(container)
    _check_indexable(container)
    _check_teachers(container)
    _check_teacher_pairs(container)
    _check_query_only(container)
    _check_optimized_metric(container)
    _check_targets(_with_precision_resolvable(container))
    _check_rules(container)


def _check_grad_cache(container: dict[str, Any]) -> dict[str, Any]:
    """``objective.grad_cache`` is how the step computes the loss's gradient, not a parameter of
    the loss: checked here, and left out of the objective's own (signature) checks."""
    objective = container.get("objective")
    if not isinstance(objective, Mapping) or GRAD_CACHE_KEY not in objective:
        return container
    key, node = f"objective.{GRAD_CACHE_KEY}", objective[GRAD_CACHE_KEY]
    if node is not None and (not isinstance(node, Mapping) or set(node) != {"chunk_size"}):
        raise ConfigError(key, f"expected {{chunk_size: <a positive integer, or null: off>}}, got {node!r}")
    try:
        grad_cache = GradCache.from_config(objective)
    except ValueError as err:
        raise ConfigError(f"{key}.chunk_size", f"{err} (the rows encoded with a graph at a time), or null (off)") from None
    if grad_cache is not None:
        model = container.get("model") or {}
        if isinstance(model, Mapping) and "_target_" in model and issubclass(
                _import_target(model["_target_"], "model"), CrossEncoder):
            raise ConfigError(f"{key}.chunk_size", "GradCache caches the gradients of embeddings; a cross-encoder "
                              "scores each pair in one forward, with no embeddings to cache: drop it")
        accumulate = (container.get("trainer") or {}).get("accumulate_grad_batches", 1)
        if accumulate not in (None, 1):
            raise ConfigError("trainer.accumulate_grad_batches", f"{accumulate}, but GradCache makes the batch "
                              "itself large (data.batch_size); accumulating batches would split its negatives")
    return {**container, "objective": {k: v for k, v in objective.items() if k != GRAD_CACHE_KEY}}


def _with_precision_resolvable(container: dict[str, Any]) -> dict[str, Any]:
    """``trainer.precision: auto`` is this project's, resolved when training starts
    (retrieval_lab.training.precision); Lightning's signature check sees its own default there."""
    trainer = container.get("trainer")
    if not isinstance(trainer, Mapping) or trainer.get("precision") != AUTO:
        return container
    return {**container, "trainer": {**trainer, "precision": None}}


def _check_optimized_metric(container: dict[str, Any]) -> None:
    """The metric a sweep optimizes must be one the run measures, or every trial returns nothing."""
    metric = container.get("optimized_metric")
    if not metric:
        return
    if metric.startswith("val/"):
        validation = (container.get("callbacks") or {}).get("retrieval_validation") or {}
        if "train" not in container["stages"] or not container["data"]["val_queries"] or not validation:
            raise ConfigError("optimized_metric", f"{metric!r} is measured on held-out train queries: "
                              "it needs the train stage, data.val_queries > 0 and callbacks.retrieval_validation")
        measured, where = [f"val/{m}" for m in validation.get("metrics", [])], "callbacks.retrieval_validation.metrics"
    elif "evaluate" in container["stages"] and "metrics" in container["evaluator"]:
        measured, where = list(container["evaluator"]["metrics"]), "evaluator.metrics"
    else:
        return  # nothing evaluated: the run returns no metric
    if metric not in measured:
        raise ConfigError("optimized_metric", f"{metric!r} is not measured; {where} gives {measured}")


def _check_rules(run: dict[str, Any]) -> None:
    """The rules of every component in the config (its class's ``rules``), then the run's own
    (config/run_rules.py): the first that does not hold is the error."""
    components = [(getattr(_import_target(node["_target_"], path), "rules", ()), node, path)
                  for path, node in _components(run, "")]
    for rules, node, path in [*components, (RUN_RULES, run, "")]:
        for rule in rules:
            violation = rule.violation(run, node, path)
            if violation is not None:
                raise ConfigError(*violation)


def _components(node: Any, path: str) -> list[tuple[str, Mapping]]:
    """(dotted path, node) of every node with a ``_target_`` under ``node``, outermost first."""
    if isinstance(node, Mapping):
        own = [(path, node)] if "_target_" in node else []
        return own + [c for key, value in node.items()
                      for c in _components(value, f"{path}.{key}" if path else str(key))]
    if isinstance(node, list):
        return [c for i, value in enumerate(node) for c in _components(value, f"{path}[{i}]")]
    return []


def _check_teacher_pairs(container: dict[str, Any]) -> None:
    """A teacher scores each query's positive against its hard negatives, once, before training."""
    if not (container.get("teacher") and _objective_needs(container) & {Need.TEACHER_PAIRS, Need.TEACHER_BATCH}):
        return
    miner = component_class(container.get("miner"))
    if miner is None:
        raise ConfigError("teacher", "a teacher scores each query's positive against its hard negatives: "
                          "choose a miner (miner=bm25, dense, ...)")
    if miner.changes_during_training:
        raise ConfigError("teacher", "teacher scores are computed once, for the negatives mined before "
                          f"training; miner {miner.__name__} changes them during training")


def _check_teachers(container: dict[str, Any]) -> None:
    """The objective's needs and the teachers set must match: a missing teacher fails here rather
    than at the first training step, and a teacher nothing reads is a mistake, not a no-op."""
    needs = _objective_needs(container)
    if needs & {Need.TEACHER_PAIRS, Need.TEACHER_QUERY} and not container.get("teacher"):
        raise ConfigError("teacher", f"the objective reads {sorted(needs - {Need.TEACHER_BATCH})} from a teacher: "
                          "choose one (teacher=cross_encoder, bi_encoder, bm25, ensemble, file)")
    in_batch = container.get("in_batch_teacher")
    if Need.TEACHER_BATCH in needs and not in_batch:
        raise ConfigError("in_batch_teacher", "the objective reads in-batch teacher scores: set in_batch_teacher "
                          "to a bi-encoder teacher (objective=dual_teacher has in_batch_teacher.path)")
    if in_batch:
        if Need.TEACHER_BATCH not in needs:
            raise ConfigError("in_batch_teacher", "the objective reads no in-batch teacher scores "
                              "(objective=dual_teacher does); drop in_batch_teacher")
        target = in_batch.get("_target_") if isinstance(in_batch, Mapping) else None
        bi_encoder = _import_target("retrieval_lab.teachers.BiEncoderTeacher", "in_batch_teacher")
        if not target or not issubclass(_import_target(target, "in_batch_teacher._target_"), bi_encoder):
            raise ConfigError("in_batch_teacher._target_", "the in-batch teacher scores B x N pairs per batch "
                              f"from embeddings: it must be a BiEncoderTeacher, got {target!r}")


def _check_query_only(container: dict[str, Any]) -> None:
    """An objective that reads query embeddings only trains on queries alone: document-side
    settings would be silently ignored, so they are errors; pseudo-queries are for it only."""
    data, sampler = container["data"], container.get("sampler") or {}
    classes = _objective_classes(container)
    if not classes or any(cls.reads_documents for cls in classes):
        if data.get("pseudo_queries", 0):
            raise ConfigError("data.pseudo_queries", "pseudo-queries train a query-only objective "
                              "(objective=embed_distill); this objective reads documents")
        return
    ignored = {
        "miner": container.get("miner") is not None,
        "sampler": (component_class(sampler) or Sampler).groups_batches,
        "data.val_queries": data.get("val_queries", 0) > 0,
    }
    for key, set_ in ignored.items():
        if set_:
            raise ConfigError(key, "the objective reads query embeddings only: it trains on queries alone, "
                              "with no documents, negatives or held-out retrieval validation")


def _objective_classes(container: dict[str, Any]) -> list[type[Objective]]:
    """The objective's class, or a weighted sum's terms' classes (a nested sum's, in turn): the
    classes whose ``needs`` and ``reads_documents`` describe the run. A target that is not an
    :class:`Objective` is an error naming its key (``objective._target_``, or a term's)."""
    classes, pending = [], [("objective", container.get("objective") or {})]
    while pending:
        path, node = pending.pop(0)
        target = node.get("_target_") if isinstance(node, Mapping) else None
        if not target:
            continue
        cls = _import_target(target, path)
        if not (inspect.isclass(cls) and issubclass(cls, Objective)):
            raise ConfigError(f"{path}._target_", f"{target!r} is not an objective: an objective subclasses "
                              "retrieval_lab.objectives.base.Objective (compute(LossInputs), needs, reads_documents)")
        if issubclass(cls, WeightedSum):
            terms = node.get("terms")
            pending += [(f"{path}.terms.{name}.loss", term.get("loss")) for name, term in
                        (terms.items() if isinstance(terms, Mapping) else ()) if isinstance(term, Mapping)]
        else:
            classes.append(cls)
    return classes


def _objective_needs(container: dict[str, Any]) -> set[Need]:
    """What the objective reads from a teacher (its class's ``needs``; a weighted sum's terms')."""
    return {need for cls in _objective_classes(container) for need in cls.needs}


def _check_indexable(container: dict[str, Any]) -> None:
    """The model must be a :class:`Model`; one that is not ``indexable`` (a cross-encoder) scores
    pairs: it can be trained, and re-rank (evaluator.rerank), but neither index a corpus nor mine
    with its own model."""
    model = container["model"]
    target = model.get("_target_") if isinstance(model, Mapping) else None
    if not target:
        return
    cls = _import_target(target, "model._target_")
    if not (inspect.isclass(cls) and issubclass(cls, Model)):
        raise ConfigError("model._target_", f"{target!r} is not a model: a model subclasses "
                          "retrieval_lab.models.base.Model (indexable, encoding_contract(), export())")
    if not cls.indexable and ("index" in container["stages"] or "evaluate" in container["stages"]):
        raise ConfigError("stages", f"model ({target}) scores (query, document) pairs and cannot index a corpus: "
                          "train it with stages=[train], then re-rank with evaluator.rerank=<its export>")


def _check_model_and_index(container: dict[str, Any]) -> None:
    """A run without a model (index=bm25 sets ``model: null``) trains nothing, and its index must
    read the texts itself (a :class:`Retriever`, BM25); a vector index needs a model's embeddings,
    and a lexical index would leave a trained model unused."""
    from retrieval_lab.retrievers.base import Retriever  # (it imports the indexes, whose rules import config/)

    stages, model = container["stages"], container["model"]
    uses_index = "index" in stages or bool(container.get("load_index"))
    index = component_class(container.get("index")) if uses_index else None
    lexical = index is not None and issubclass(index, Retriever)
    if model is None and "train" in stages:
        raise ConfigError("stages", "includes train, but the run has no model (index=bm25 reads the texts): "
                          "use stages=[index,evaluate]")
    if model is None and index is not None and not lexical:
        raise ConfigError("model", f"null, but the index ({index.__name__}) searches a model's embeddings: "
                          "choose a model (model=minilm, ...)")
    if lexical and model is not None and "train" in stages:
        raise ConfigError("index", f"{index.__name__} searches the texts themselves: the trained model would go "
                          "unused; choose a vector index (index=flat, ...) or drop train from stages")


def _check_targets(run: dict[str, Any]) -> None:
    for path, node in _components(run, ""):
        _check_call(node, path)


def _import_target(target: str, path: str) -> Any:
    module_name, _, attr = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(f"{path}._target_", f"cannot import {target!r} ({err})") from None


def _check_call(node: Mapping, path: str) -> None:
    target = _import_target(node["_target_"], path)
    signature = _signature(target)
    if signature is None:
        return  # builtins without introspectable signatures: Hydra reports any error at build
    params, accepts_any, hints = signature
    given = {k: v for k, v in node.items() if not (k.startswith("_") and k.endswith("_"))}
    for key in given:
        if key not in params and not accepts_any:
            raise ConfigError(
                f"{path}.{key}",
                f"not a parameter of {node['_target_']} (it takes: {', '.join(sorted(params))})",
            )
    if not node.get("_partial_", False):
        for name, param in params.items():
            if param.default is param.empty and name not in given:
                raise ConfigError(f"{path}.{name}", f"required by {node['_target_']} but not set")
    for key, value in given.items():
        if key in hints and not (isinstance(value, Mapping) and "_target_" in value):
            if _matches(value, hints[key]) is False:
                raise ConfigError(
                    f"{path}.{key}", f"expected {_describe(hints[key])}, got {value!r}"
                )


def _signature(target: Any) -> tuple[dict[str, inspect.Parameter], bool, dict[str, Any]] | None:
    """(named parameters, whether it takes any other keyword, type hints) of a callable. One of
    this project's classes whose ``__init__`` forwards ``**kwargs`` to its base's takes the base's
    parameters too (a miner's selection controls): its classes are read, in MRO order, until one
    takes no ``**kwargs`` (or one of another library's, read as its own signature says, as is
    another library's class)."""
    if not inspect.isclass(target):
        functions = [target]
    elif not _ours(target):
        functions = [target.__init__]
    else:  # ours, up to and including the first other library's class that defines __init__
        functions = []
        for cls in target.__mro__:
            if "__init__" in cls.__dict__:
                functions.append(cls.__dict__["__init__"])
                if not _ours(cls):
                    break
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    accepts_any = False
    for function in functions:
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            return None if not params else (params, True, hints)
        for name, param in signature.parameters.items():
            named = param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
            if named and name != "self" and name not in params:
                params[name] = param
        hints = {**_type_hints(function), **hints}
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
        if not accepts_any:
            break
    return params, accepts_any, hints


def _ours(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "retrieval_lab"


def _type_hints(function: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # unresolvable forward references: skip type checks, keep key checks
        return {}


def _matches(value: Any, hint: Any) -> bool | None:
    """True/False where the hint is understood, None where it is not (then nothing is claimed)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        results = [_matches(value, arg) for arg in typing.get_args(hint)]
        return True if any(results) else (None if None in results else False)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    container = origin or hint
    if container in (list, tuple, Sequence, typing.Sequence) or container is typing.List:
        return isinstance(value, (list, tuple))
    if container in (dict, Mapping, typing.Mapping) or container is typing.Dict:
        return isinstance(value, Mapping)
    return None


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is not None:  # Literal[...], Optional[...], list[str]: in full
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
