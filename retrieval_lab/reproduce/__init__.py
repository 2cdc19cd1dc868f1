"""Pinned reproductions (Pyserini style): re-run reference configs, compare their metrics with the
numbers pinned in ``conf/reproduce/<name>.yaml``, and report OK / OKish / FAIL per metric."""

from retrieval_lab.reproduce.spec import (
           Row,
           Spec,
           SpecError,
           available_specs,
           load_spec,
           resolve_spec,
)
from retrieval_lab.reproduce.status import FAIL, OK, OKISH, classify, exit_status

__all__ = ["FAIL", "OK", "OKISH", "Row", "Spec", "SpecError", "available_specs", "classify",
           "exit_status", "load_spec", "resolve_spec"]
