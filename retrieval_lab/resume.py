"""Resuming a run in its own directory: ``rlab resume=<run dir>`` (or ``rlab-resume <run dir>``),
and a sweep launched again with the same ``hydra.sweep.dir``.

``resume=<dir>`` is turned, before Hydra composes anything, into the overrides the run was
launched with (``.hydra/overrides.yaml``) and ``hydra.run.dir=<dir>``: the run's own config,
composed again. Whenever a job's directory already holds a run record, the job looks at it
(:func:`previous_run`): a finished run of the same config is not redone, an unfinished one is
resumed, and a run of another config is refused, naming the first key that differs.
"""

import sys
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from retrieval_lab.config.validation import ConfigError
from retrieval_lab.record import RunRecord
from retrieval_lab.run_layout import RunLayout

RESUME = "resume="


def resume_argv(argv: list[str]) -> list[str]:
    """``argv`` with ``resume=<dir>`` replaced by that run's overrides and its directory."""
    given = [a for a in argv[1:] if a.startswith(RESUME)]
    if not given:
        return argv
    run_dir = Path(given[-1][len(RESUME):]).expanduser().resolve()
    layout = RunLayout(run_dir)
    if not (layout.record.is_file() and layout.overrides.is_file()):
        raise ConfigError("resume", f"{run_dir} is not a run directory (it has no {layout.record.name} "
                          f"and {layout.overrides.relative_to(run_dir)})")
    overrides = yaml.safe_load(layout.overrides.read_text()) or []
    rest = [a for a in argv[1:] if not a.startswith(RESUME)]
    return [argv[0], *overrides, *rest, f"hydra.run.dir={run_dir}"]


def previous_run(run_dir: Path, cfg: DictConfig) -> dict[str, Any] | None:
    """The record of the run already in ``run_dir`` (None if there is none); refuses one whose
    config differs from ``cfg``."""
    record = RunRecord.read(run_dir)
    layout = RunLayout(run_dir)
    if record is None or not layout.config.is_file():
        return None
    before = yaml.safe_load(layout.config.read_text())
    now = OmegaConf.to_container(cfg, resolve=True)
    difference = _first_difference(before, now, "")
    if difference is not None:
        raise ConfigError(difference, f"{run_dir} holds a run of another config (this key differs: "
                          f"{_show(before, difference)} there, {_show(now, difference)} now); resume it "
                          "with its own config, or give the new run its own directory")
    return record


def _first_difference(a: Any, b: Any, key: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for name in sorted(set(a) | set(b), key=str):
            found = _first_difference(a.get(name, _MISSING), b.get(name, _MISSING), f"{key}.{name}".lstrip("."))
            if found is not None:
                return found
        return None
    return None if a == b else (key or "<root>")


_MISSING = object()


def _show(tree: Any, key: str) -> str:
    for part in key.split("."):
        tree = tree.get(part, _MISSING) if isinstance(tree, dict) else _MISSING
    return "absent" if tree is _MISSING else repr(tree)


def resume_main() -> None:
    """``rlab-resume <run dir>``: ``rlab resume=<run dir>``."""
    from retrieval_lab.cli import main

    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print("usage: rlab-resume <run dir>", file=sys.stderr)
        sys.exit(2)
    sys.argv = [sys.argv[0], f"{RESUME}{sys.argv[1]}"]
    main()
