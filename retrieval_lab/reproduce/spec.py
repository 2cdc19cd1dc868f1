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
    _no_unknown_keys(data, {"name", "overrides", "expected", "description"}, path, f"{key}.")
    name = data.get("name")
    _check(isinstance(name, str) and _ROW_NAME.fullmatch(name), path, f"{key}.name",
           f"expected a name of letters, digits, _ . - (it names the run directory), got {name!r}")
    expected = data.get("expected")
    _check(isinstance(expected, dict) and expected, path, f"{key}.expected",
           "expected a non-empty mapping of metric -> pinned value")
    for metric, value in expected.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        _check(number, path, f"{key}.expected.{metric}", f"expected a number, got {value!r}")
    description = data.get("description", "")
    _check(isinstance(description, str), path, f"{key}.description", "expected a string")
    return Row(name=name, overrides=_overrides(data.get("overrides", []), path, f"{key}.overrides"),
               expected={str(m): float(v) for m, v in expected.items()}, description=description)


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
