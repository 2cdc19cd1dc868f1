"""Where a model's weights come from, checked before any work: a path that does not exist, a hub
id that cannot be had, and the embedding dimension a model will have (from its config.json, never
its weights), for the rules of the components that name a model or depend on its dimension.

A ``name_or_path`` is, in this order: ``pkg:<module>`` (weights shipped in a package); an
existing local path (it must hold ``config.json``, or ``query/`` and ``doc/`` with one each: a
two-tower export); a local-looking path (absolute, ``./``, ``../``, ``~``) that does not exist:
an error; a Hugging Face hub id. A hub id in the local Hugging Face cache is fine; otherwise,
with ``HF_HUB_OFFLINE`` set, or when the hub cannot be reached, it is an error at once (rather
than from_pretrained's minute of retries); where the hub answers, an id it does not know is an
error, and a known one is downloaded by the run as usual.
"""

import functools
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HUB_TIMEOUT_S = 10.0
LOCAL_PREFIXES = ("/", "./", "../", "~")


def model_source_problem(name_or_path: Any, node: Any = None, run: Any = None) -> str | None:
    """What is wrong with ``name_or_path`` as a model's source, or None (null passes). Has the
    signature of a :class:`~retrieval_lab.config.rules.Param` problem."""
    from retrieval_lab.models.loading import PACKAGE_SCHEME, resolve_model_path  # (models import this module)

    if name_or_path is None:
        return None
    name = str(name_or_path)
    if name.startswith(PACKAGE_SCHEME):
        try:
            resolve_model_path(name)
        except ValueError as err:
            return str(err)
        return None
    path = Path(name).expanduser()
    if path.exists():
        if _config_dir(path) is None:
            return f"{path} holds no config.json (nor query/ and doc/ with one each): not a Hugging Face model"
        return None
    if name.startswith(LOCAL_PREFIXES) or name in (".", ".."):
        return f"path {name} does not exist"
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return f"path {name} does not exist (nor is it a Hugging Face hub id, namespace/name)"
    return _hub_problem(name)


def _config_dir(path: Path) -> Path | None:
    """The directory whose config.json describes the (query) encoder at ``path``, if any."""
    if (path / "config.json").is_file():
        return path
    if all((path / side / "config.json").is_file() for side in ("query", "doc")):
        return path / "query"
    return None


@functools.cache
def _hub_problem(repo_id: str) -> str | None:
    from huggingface_hub import constants, get_token, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return None
    not_cached = f"hub id {repo_id!r} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE})"
    if constants.HF_HUB_OFFLINE:
        return f"{not_cached} and HF_HUB_OFFLINE is set"
    token = get_token()
    request = urllib.request.Request(f"{constants.ENDPOINT}/api/models/{repo_id}", method="HEAD",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        urllib.request.urlopen(request, timeout=HUB_TIMEOUT_S).close()
    except urllib.error.HTTPError as err:
        if err.code in (401, 404):
            return f"{constants.ENDPOINT} has no model {repo_id!r} (HTTP {err.code}; a private one needs HF_TOKEN)"
        return None  # the hub answered (rate limit, gated, ...): the download says what it says
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return f"{not_cached} and {constants.ENDPOINT} cannot be reached ({reason})"
    return None


def encoder_hidden_size(model: Mapping[str, Any]) -> int | None:
    """The hidden size of a model node's (query) encoder: ``config_overrides.hidden_size``, else
    its config.json, read with ``local_files_only`` (no weights, no download); None where that
    cannot be known before the run downloads it."""
    overrides = model.get("config_overrides") or {}
    if "hidden_size" in overrides:
        return int(overrides["hidden_size"])
    source = (model.get("query") or {}).get("path") or model.get("name_or_path")
    if source is None or model_source_problem(source) is not None:
        return None
    from retrieval_lab.models.loading import resolve_model_path

    path = Path(resolve_model_path(str(source))).expanduser()
    local = _config_dir(path) if path.exists() else None
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(local or source), local_files_only=True)
    except (OSError, ValueError):
        return None
    return getattr(config, "hidden_size", None)


def embedding_dim(model: Any) -> int | None:
    """The size of the embeddings a bi-encoder node gives (``truncate_dim`` where set), or None
    (no model, a model that gives no embeddings, or a size not known before the run)."""
    from retrieval_lab.config.rules import component_class
    from retrieval_lab.models.bi_encoder import BiEncoder

    cls = component_class(model)
    if cls is None or not issubclass(cls, BiEncoder):
        return None
    return model.get("truncate_dim") or encoder_hidden_size(model)

