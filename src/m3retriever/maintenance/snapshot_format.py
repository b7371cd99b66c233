"""What a snapshot file must hold: its member names and the manifest's fields, checked as the
untrusted input they are (no value from the file is used before it passes here)."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from m3retriever.errors import ConfigError, DamagedSnapshotError, InputError
from m3retriever.store.collection_names import check_name

__all__ = ["FORMAT", "MANIFEST", "MANIFEST_SUM", "META", "SHARD", "checked_manifest", "shard_member"]

FORMAT = "m3retriever-edge-snapshot/2"
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.sha256"
META = "collection.m3r.json"
SHARD = "shard"
_MAX_TAIL = 1 << 31  # zero tail restored as a hole: at most 2 GiB past the stored bytes
_SHA = re.compile(r"[0-9a-f]{64}")
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")

Damaged = Callable[[Path, str], DamagedSnapshotError]


def checked_manifest(raw: bytes, path: Path, damaged: Damaged) -> dict[str, Any]:
    """The manifest, each field checked.

    Raises:
        InputError: the file is a snapshot of another format (an older version's, without
            checksums).
        DamagedSnapshotError: a field is missing, of the wrong type or out of range.
    """
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise damaged(path, f"its manifest is not JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise damaged(path, "its manifest is not an object")
    if manifest.get("format") != FORMAT:
        raise InputError(
            f"{path} is a snapshot of format {manifest.get('format')!r}, not {FORMAT!r}: snapshots before "
            "format 2 carry no checksums and cannot be verified; make it again with this version"
        )
    try:
        manifest["collection"] = check_name(manifest.get("collection"), "the snapshot's collection name")
    except ConfigError as exc:
        raise damaged(path, str(exc)) from None
    points = manifest.get("points")
    if not isinstance(points, int) or isinstance(points, bool) or points < 0:
        raise damaged(path, f"its point count {points!r} is not a number of points")
    members = manifest.get("members")
    if not isinstance(members, dict) or META not in members:
        raise damaged(path, "its manifest lists no members or no metadata file")
    for name, entry in members.items():
        _check_entry(name, entry, path, damaged)
    return manifest


def _check_entry(name: str, entry: Any, path: Path, damaged: Damaged) -> None:
    if name != META:
        shard_member(Path("/"), name, path, damaged)
    ok = (
        isinstance(entry, dict)
        and isinstance(entry.get("size"), int)
        and not isinstance(entry.get("size"), bool)
        and entry["size"] >= 0
        and isinstance(entry.get("sha256"), str)
        and _SHA.fullmatch(entry["sha256"]) is not None
    )
    full = entry.get("full", entry.get("size")) if isinstance(entry, dict) else None
    if not ok or not isinstance(full, int) or isinstance(full, bool) or not 0 <= full - entry["size"] <= _MAX_TAIL:
        raise damaged(path, f"its manifest entry for {name!r} is not a size and a SHA-256")


def shard_member(root: Path, name: str, path: Path, damaged: Damaged) -> Path:
    """Where the shard member ``name`` (``shard/<relative path>``) goes under ``root``.

    Raises:
        DamagedSnapshotError: the name is not ``shard/`` followed by plain relative parts
            (no absolute path, no ``..``, no hidden or odd characters).
    """
    parts = PurePosixPath(name).parts
    if len(parts) < 2 or parts[0] != SHARD or not all(_PART.fullmatch(p) for p in parts[1:]) or ".." in parts:
        raise damaged(path, f"member {name[:80]!r} is not a path inside the shard")
    return root.joinpath(*parts[1:])
