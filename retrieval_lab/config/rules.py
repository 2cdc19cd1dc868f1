"""Cross-field rules that a constructor's signature cannot express, declared by the component
they concern (``rules: ClassVar[tuple[Rule, ...]]`` on its class) and checked in one place,
:func:`retrieval_lab.config.validation.validate_config`, for every ``_target_`` of the config.

A rule reads the whole resolved run config (a plain dict), so it can relate the component to the
rest of the run: a refreshing miner needs batches built in the main process, a dense miner
without a model of its own needs a run model that can embed a corpus.
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


def component_class(node: Any) -> type | None:
    """The class a config node's ``_target_`` names (None for no node, or no ``_target_``)."""
    target = node.get("_target_") if isinstance(node, Mapping) else None
    return get_class(target) if target else None
