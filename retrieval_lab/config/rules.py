"""Cross-field rules that a constructor's signature cannot express, declared by the component
they concern (``rules: ClassVar[tuple[Rule | Param, ...]]`` on its class) and checked in one
place, :func:`retrieval_lab.config.validation.validate_config`, for every ``_target_`` of the config.

Two kinds:

- :class:`Rule` reads the whole resolved run config (a plain dict), so it can relate the
  component to the rest of the run: a refreshing miner needs batches built in the main process, a
  dense miner without a model of its own needs a run model that can embed a corpus. Its key is
  absolute (``miner.model``).
- :class:`Param` is about one of the component's own arguments, checked wherever the component
  is configured (the run's model, a miner's model, a weighted sum's term): its key is that node's
  path plus the argument (``objective.terms.contrastive.loss.temperature``). Its ``problem`` says
  what is wrong, with the value, or None; :func:`at_least` and :func:`positive` are the usual ones.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hydra.utils import get_class


@dataclass(frozen=True)
class Rule:
    key: str  # the dotted config key the error names
    holds: Callable[[dict[str, Any]], bool]  # on the resolved run config
    message: str

    def violation(self, run: dict[str, Any], node: Mapping[str, Any], path: str) -> tuple[str, str] | None:
        """(key, message) where the rule does not hold, else None."""
        return None if self.holds(run) else (self.key, self.message)


@dataclass(frozen=True)
class Param:
    name: str  # the argument, a dotted key inside the component's node (``query.path``)
    # (its value, the component's node, the run config) -> what is wrong, or None
    problem: Callable[[Any, Mapping[str, Any], dict[str, Any]], str | None]

    def violation(self, run: dict[str, Any], node: Mapping[str, Any], path: str) -> tuple[str, str] | None:
        """(key, message) where the argument is set and wrong, else None (an argument left out
        takes the constructor's default)."""
        value: Any = node
        for part in self.name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return None
            value = value[part]
        problem = self.problem(value, node, run)
        return None if problem is None else (f"{path}.{self.name}" if path else self.name, problem)


def at_least(low: int | float) -> Callable[[Any, Mapping[str, Any], dict[str, Any]], str | None]:
    """A number >= ``low`` (null passes: where null is not allowed, the signature's type says so)."""
    def problem(value: Any, node: Mapping[str, Any], run: dict[str, Any]) -> str | None:
        return None if value is None or value >= low else f"must be >= {low}, got {value!r}"
    return problem


def positive(value: Any, node: Mapping[str, Any], run: dict[str, Any]) -> str | None:
    """A number > 0 (null passes)."""
    return None if value is None or value > 0 else f"must be > 0, got {value!r}"


def component_class(node: Any) -> type | None:
    """The class a config node's ``_target_`` names (None for no node, or no ``_target_``)."""
    target = node.get("_target_") if isinstance(node, Mapping) else None
    return get_class(target) if target else None
