"""Find a model directory: a local path as it is, a Hugging Face hub id through the local cache
(downloaded only when the hub may be contacted), with errors that say how to get a local copy."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from m3retriever._deps import require
from m3retriever.errors import ModelNotFoundError

__all__ = [
    "HUB_IGNORE_PATTERNS",
    "WEIGHT_FILES",
    "hub_offline",
    "looks_like_local_path",
    "not_found_message",
    "resolve_model_dir",
    "cached_config",
]

# Files never needed to run a model through torch; FlagEmbedding skips the first three, and the
# ONNX export in BAAI/bge-m3 alone is over 2 GB.
HUB_IGNORE_PATTERNS = ("flax_model.msgpack", "rust_model.ot", "tf_model.h5", "onnx/*", "openvino/*")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return True


def looks_like_local_path(model: str) -> bool:
    """True for strings that cannot be a hub id (``name`` or ``org/name``)."""
    if os.path.isabs(model) or model.startswith((".", "~")) or "\\" in model:
        return True
    parts = model.split("/")
    return len(parts) > 2 or any(not part for part in parts)


def not_found_message(model: str, reason: str, *, default_model: str, how_to: str) -> str:
    """The error message for a model that cannot be found: why, and how to get a local copy.

    Args:
        model: What was asked for (hub id or path).
        reason: Why it cannot be used.
        default_model: The hub id to name in the download hint.
        how_to: How to point m3retriever at a local copy.
    """
    return (
        f"Model {model!r} could not be found: {reason}. "
        f"Point m3retriever at a local copy instead: {how_to}. "
        f"To get one, run `hf download {default_model} --local-dir /path/to/{default_model.split('/')[-1]}` "
        "(older huggingface_hub: `huggingface-cli download ...`) on a machine with internet access "
        "and copy the folder over."
    )


def resolve_model_dir(
    model: str,
    *,
    default_model: str,
    how_to: str,
    required_files: Sequence[str] = (),
) -> str:
    """Return the absolute local directory of ``model``, downloading it only when online.

    Local paths are used as they are. Hub ids are looked up in the Hugging Face cache first and
    downloaded only when the hub may be contacted, so an offline machine fails at once instead of
    hanging on the network.

    Args:
        model: A local directory or a hub id (``org/name``).
        default_model: The hub id to name in the download hint.
        how_to: How to point m3retriever at a local copy (for the error message).
        required_files: Files that must exist in the directory besides ``config.json`` and weights.

    Returns:
        The absolute path of the model directory.

    Raises:
        ModelNotFoundError: The model is not available locally and cannot be downloaded, or the
            directory lacks a file the model needs.
    """

    def fail(reason: str, cause: BaseException | None = None) -> ModelNotFoundError:
        err = ModelNotFoundError(
            not_found_message(model, reason, default_model=default_model, how_to=how_to)
        )
        err.__cause__ = cause
        return err

    expanded = os.path.expanduser(model)
    if os.path.exists(expanded):
        if not os.path.isdir(expanded):
            raise fail(f"{expanded} is a file, not a model directory")
        directory = os.path.abspath(expanded)
    elif looks_like_local_path(model):
        raise fail(f"no such directory {os.path.abspath(expanded)}")
    else:
        directory = _hub_snapshot(model, fail)
    return str(_checked_model_dir(directory, required_files, fail))


def _hub_snapshot(model: str, fail: Callable[..., ModelNotFoundError]) -> str:
    """The local snapshot of hub id ``model``: from the cache when offline, else downloaded."""
    hub = require(
        "huggingface_hub", package="huggingface_hub", extra="torch", purpose="Loading models"
    )
    try:
        if hub_offline():
            directory: str = hub.snapshot_download(repo_id=model, local_files_only=True)
        else:
            directory = hub.snapshot_download(
                repo_id=model, ignore_patterns=list(HUB_IGNORE_PATTERNS)
            )
    except Exception as exc:  # hub errors are OSError, ValueError or HTTP errors
        where = (
            "it is not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE=1)"
            if hub_offline()
            else f"downloading it from the Hugging Face hub failed ({type(exc).__name__}: {exc})"
        )
        raise fail(where, exc) from exc
    return directory


def _checked_model_dir(
    directory: str, required_files: Sequence[str], fail: Callable[..., ModelNotFoundError]
) -> Path:
    """``directory``, once it holds ``config.json``, weights and every required file."""
    base = Path(directory)
    if not (base / "config.json").is_file():
        raise fail(f"{directory} has no config.json")
    if not any((base / name).is_file() for name in WEIGHT_FILES):
        raise fail(f"{directory} has no weights (expected one of {', '.join(WEIGHT_FILES)})")
    missing = [name for name in required_files if not (base / name).is_file()]
    if missing:
        raise fail(f"{directory} lacks {', '.join(missing)}")
    return base


def cached_config(model: str) -> dict[str, Any] | None:
    """Read ``config.json`` of a local directory or a cached hub model, without any download."""
    expanded = os.path.expanduser(model)
    path: str | None = None
    if os.path.isdir(expanded):
        path = os.path.join(expanded, "config.json")
    elif not looks_like_local_path(model):
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(repo_id=model, filename="config.json")
            path = found if isinstance(found, str) else None
        except Exception:  # noqa: BLE001 - the cache lookup is best effort
            path = None
    if path is None or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
