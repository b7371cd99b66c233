"""Directories written by ``m3retriever model export-onnx``: their manifest, checked before a session
loads them.

An export directory holds ``model.onnx`` (and, for graphs over 2 GB, ``model.onnx.data``), the
tokenizer files, the source model's ``config.json`` and :data:`MANIFEST_NAME`, a JSON file that
records what the graph is (``kind``: ``"bge-m3"`` or ``"reranker"``), where it came from, the
sha256 of every file, the opset, the quantization and the graph's outputs. Loading verifies the
sha256 of every listed file, so a damaged or swapped file is refused with a clear error instead
of producing wrong vectors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any, Mapping

from m3retriever.errors import ModelNotFoundError

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "EXPORT_COMMAND",
    "sha256_file",
    "read_manifest",
    "verify_export",
    "require_directory",
    "source_model_id",
    "INT8_SUFFIX",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "m3retriever-onnx.json"
"""File name of the manifest inside an export directory."""

MANIFEST_VERSION = 1
"""Version of the manifest's layout."""

EXPORT_COMMAND = "m3retriever model export-onnx MODEL OUTDIR [--int8]"
"""How to write an export directory, quoted by error messages."""

INT8_SUFFIX = " (onnx int8)"
"""Appended to the source model of an int8 export where it names the vectors (fingerprints):
int8 vectors are close to fp32's but not the same."""

_CHUNK = 1 << 20

# (resolved path, size, mtime_ns) -> sha256: each file is hashed once per process, however many
# encoders and rerankers load the directory (a 2 GB graph takes seconds to hash).
_verified: dict[tuple[str, int, int], str] = {}
_verified_lock = threading.Lock()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (model weights can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached_sha256(path: Path) -> str:
    """:func:`sha256_file`, remembered while the file's size and modification time stay."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _verified_lock:
        known = _verified.get(key)
    if known is None:
        known = sha256_file(path)
        with _verified_lock:
            _verified[key] = known
    return known


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of ``directory``, or ``None`` when it has none (an ONNX model from elsewhere).

    Raises:
        ModelNotFoundError: The manifest exists but is not a JSON object.
    """
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"{path} is unreadable ({exc}); export the model again: {EXPORT_COMMAND}"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise ModelNotFoundError(
            f"{path} is not an m3retriever export manifest (no 'files' table); export the model "
            f"again: {EXPORT_COMMAND}"
        )
    return data


def verify_export(directory: Path, kind: str | None, what: str) -> dict[str, Any] | None:
    """Check an export directory against its manifest: kind and the sha256 of every file.

    Args:
        directory: The directory.
        kind: The kind the caller needs (``"bge-m3"``, ``"reranker"``), or ``None`` for any.
        what: Who loads it, for the error messages.

    Returns:
        The manifest, or ``None`` when the directory has none (nothing to verify).

    Raises:
        ModelNotFoundError: The manifest names another kind, or a listed file is missing or
            does not match its sha256.
    """
    manifest = read_manifest(directory)
    if manifest is None:
        return None
    found = manifest.get("kind")
    if kind is not None and found != kind:
        raise ModelNotFoundError(
            f"{what} needs an export of kind {kind!r}, but {directory} holds {found!r} "
            f"(see {MANIFEST_NAME}); point it at the right directory or export one: {EXPORT_COMMAND}"
        )
    files: Mapping[str, Any] = manifest["files"]
    for name, expected in sorted(files.items()):
        path = Path(directory) / name
        if not path.is_file():
            raise ModelNotFoundError(
                f"{what}: {path} is listed in {MANIFEST_NAME} but missing; copy the whole "
                f"export directory or export the model again: {EXPORT_COMMAND}"
            )
        actual = _cached_sha256(path)
        if actual != expected:
            raise ModelNotFoundError(
                f"{what}: {path} is damaged or was replaced (sha256 {actual[:12]}..., the "
                f"manifest records {str(expected)[:12]}...); copy it again or export the model "
                f"again: {EXPORT_COMMAND}"
            )
    logger.debug("verified %d files of %s", len(files), directory)
    return manifest


def require_directory(path: str, what: str, *, source: str, setting: str) -> None:
    """Raise an error giving the ``export-onnx`` command when ``path`` is not a directory.

    Args:
        path: The configured directory.
        what: Who needs it and what it should hold, to start the message.
        source: The hub id to export, for the command.
        setting: The configuration setting that names the directory.

    Raises:
        ModelNotFoundError: ``path`` is not a directory.
    """
    if not Path(path).expanduser().is_dir():
        raise ModelNotFoundError(
            f"{what} in {path!r}, which is not a directory: write one with `m3retriever model "
            f"export-onnx {source} {path} --int8` (a local checkpoint works in place of {source}), "
            f"or set {setting} to an existing export (environment: M3R_{setting.upper()})"
        )


def source_model_id(directory: Path) -> str | None:
    """The model an export came from, as given to ``export-onnx`` (with :data:`INT8_SUFFIX`
    for int8 exports), or ``None`` for a directory without a manifest."""
    manifest = read_manifest(directory)
    model = ((manifest or {}).get("source") or {}).get("model")
    if manifest is None or not model:
        return None
    return str(model) + (INT8_SUFFIX if manifest.get("quantization") else "")
