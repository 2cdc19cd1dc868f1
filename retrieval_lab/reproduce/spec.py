"""A reproduction spec: the rows of ``conf/reproduce/<name>.yaml`` (name, rlab overrides, the
metrics pinned for them), read and checked with one-line errors naming the file and key."""

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from retrieval_lab import CONF_DIR

SPEC_DIR = CONF_DIR / "reproduce"
_ROW_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # it names the row's run directory


class SpecError(ValueError):
    """A spec that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Row:
    name: str
    overrides: list[str]
    expected: dict[str, float]  # metric (as in metrics.json) -> pinned value
    description: str = ""
    # Where ``expected`` was measured: {precision: 32-true, cpu: "AMD EPYC (AVX2)"}.
    measured_at: dict[str, str] = field(default_factory=dict)
    # Precision -> its own pins, for a precision whose figures fall outside OKish of ``expected``.
    expected_at: dict[str, dict[str, float]] = field(default_factory=dict)

    def pins(self, precision: str | None) -> tuple[dict[str, float], str | None]:
        """The pins a run in ``precision`` is checked against, and the precision they are pinned
        for (None: the row's ``expected``)."""
        if precision in self.expected_at:
            return self.expected_at[precision], precision
        return self.expected, None


@dataclass(frozen=True)
class Spec:
    name: str
    path: Path
    rows: list[Row]
    overrides: list[str] = field(default_factory=list)  # applied to every row, before its own


def available_specs() -> list[str]:
    return sorted(p.stem for p in SPEC_DIR.glob("*.yaml"))


def resolve_spec(name_or_path: str) -> Path:
    """``conf/reproduce/<name>.yaml`` for a name, or the given YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise SpecError(f"{path}: no such file")
        return path
    if (SPEC_DIR / f"{name_or_path}.yaml").is_file():
        return SPEC_DIR / f"{name_or_path}.yaml"
    raise SpecError(f"no reproduction named {name_or_path!r}; available: "
                    f"{', '.join(available_specs()) or 'none'} (or give a path to a .yaml file)")


def load_spec(path: str | Path) -> Spec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise SpecError(f"{path}: cannot read ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{path}{where}: malformed YAML ({getattr(err, 'problem', None) or err})") from None
    _check(isinstance(data, dict), path, "<root>", f"expected a mapping with rows, got {_kind(data)}")
    _no_unknown_keys(data, {"overrides", "rows"}, path, "")
    overrides = _overrides(data.get("overrides", []), path, "overrides")
    rows_data = data.get("rows")
    _check(isinstance(rows_data, list) and rows_data, path, "rows", "expected a non-empty list of rows")
    rows = [_row(row, path, f"rows[{i}]") for i, row in enumerate(rows_data)]
    names = [r.name for r in rows]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    _check(duplicate is None, path, "rows", f"duplicate row name {duplicate!r}")
    return Spec(name=path.stem, path=path.resolve(), rows=rows, overrides=overrides)


def _row(data: Any, path: Path, key: str) -> Row:
    _check(isinstance(data, dict), path, key, f"expected a mapping (name, overrides, expected), got {_kind(data)}")
    _no_unknown_keys(data, {"name", "overrides", "expected", "description", "measured_at", "expected_at"},
                     path, f"{key}.")
    name = data.get("name")
    _check(isinstance(name, str) and _ROW_NAME.fullmatch(name), path, f"{key}.name",
           f"expected a name of letters, digits, _ . - (it names the run directory), got {name!r}")
    description = data.get("description", "")
    _check(isinstance(description, str), path, f"{key}.description", "expected a string")
    measured_at = data.get("measured_at", {})
    _check(isinstance(measured_at, dict), path, f"{key}.measured_at",
           f"expected a mapping (precision, cpu), got {_kind(measured_at)}")
    _no_unknown_keys(measured_at, {"precision", "cpu"}, path, f"{key}.measured_at.")
    for name_, value in measured_at.items():
        _check(isinstance(value, str), path, f"{key}.measured_at.{name_}", f"expected a string, got {value!r}")
    expected_at = data.get("expected_at", {})
    _check(isinstance(expected_at, dict), path, f"{key}.expected_at",
           f"expected a mapping of precision -> pins, got {_kind(expected_at)}")
    return Row(name=name, overrides=_overrides(data.get("overrides", []), path, f"{key}.overrides"),
               expected=_pins(data.get("expected"), path, f"{key}.expected"), description=description,
               measured_at=dict(measured_at),
               expected_at={str(p): _pins(pins, path, f"{key}.expected_at.{p}") for p, pins in expected_at.items()})


def _pins(value: Any, path: Path, key: str) -> dict[str, float]:
    _check(isinstance(value, dict) and value, path, key, "expected a non-empty mapping of metric -> pinned value")
    for metric, number in value.items():
        finite = isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(number)
        _check(finite, path, f"{key}.{metric}", f"expected a number, got {number!r}")
    return {str(m): float(v) for m, v in value.items()}


def _overrides(value: Any, path: Path, key: str) -> list[str]:
    _check(isinstance(value, list), path, key, f"expected a list of rlab overrides, got {_kind(value)}")
    for i, item in enumerate(value):
        _check(isinstance(item, str) and "=" in item, path, f"{key}[{i}]",
               f"expected an override such as key=value, got {item!r}")
    return list(value)


def _no_unknown_keys(data: dict, allowed: set[str], path: Path, prefix: str) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    _check(not unknown, path, f"{prefix}{unknown[0] if unknown else ''}",
           f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _check(condition: Any, path: Path, key: str, message: str) -> None:
    if not condition:
        raise SpecError(f"{path}: {key}: {message}")


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
