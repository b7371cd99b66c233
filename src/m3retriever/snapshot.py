"""Snapshots of an embedded (Qdrant Edge) collection, and their restore.

A snapshot is one tar file holding the collection's Edge shard (its segments and write-ahead
log, flushed and closed while they are read; the zero tails of the files Edge preallocates
are left out and restored as holes), the collection's metadata file (fingerprint,
description, BM25 length totals, saved search defaults) and a manifest (format, collection,
point count). Restoring it unpacks the shard beside the store's collections, checks it opens
with the point count of the manifest, then moves it into place, the metadata file last (its
presence marks a complete collection). Restore refuses to replace a collection that holds
points unless told to.

A Qdrant server makes its own snapshots (``POST /collections/<name>/snapshots``; see
docs/moving-to-a-server.md); our metadata lives in the server collection's metadata and
travels with them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from m3retriever.errors import ConfigError, InputError, StoreError
from m3retriever.store import open_store
from m3retriever.store.edge import EdgeStore

__all__ = ["SnapshotReport", "restore_snapshot", "snapshot_collection"]

logger = logging.getLogger(__name__)

FORMAT = "m3retriever-edge-snapshot/1"
_MANIFEST = "manifest.json"
_META = "collection.m3r.json"
_SHARD = "shard"
_BLOCK = 1 << 20


@dataclass(frozen=True)
class SnapshotReport:
    """What :func:`snapshot_collection` or :func:`restore_snapshot` did.

    Attributes:
        collection: The collection snapshotted or restored.
        path: The snapshot file.
        points: Points in the collection.
        bytes: Size of the snapshot file.
        seconds: Wall time.
    """

    collection: str
    path: str
    points: int
    bytes: int
    seconds: float


def _edge(store: EdgeStore | str | os.PathLike[str]) -> tuple[EdgeStore, bool]:
    if isinstance(store, EdgeStore):
        return store, False
    opened = open_store(store)
    if not isinstance(opened, EdgeStore):
        opened.close()
        raise ConfigError(
            f"snapshots here are of embedded stores (a directory), not {os.fspath(store)!r}: a Qdrant "
            "server makes its own with POST /collections/<name>/snapshots (see "
            "docs/moving-to-a-server.md), or copy the collection with `m3retriever copy`"
        )
    return opened, True


def snapshot_collection(
    store: EdgeStore | str | os.PathLike[str], collection: str, path: str | os.PathLike[str]
) -> SnapshotReport:
    """Write a snapshot of an embedded collection to the file ``path``.

    Args:
        store: An open :class:`~m3retriever.store.edge.EdgeStore` or its directory.
        collection: The collection.
        path: The snapshot file to write (replaced if it exists, once the new one is complete).

    Raises:
        StoreError: if the collection does not exist.
        ConfigError: if ``store`` is not an embedded store.
    """
    start = time.perf_counter()
    edge, owned = _edge(store)
    try:
        if not edge.has_collection(collection):
            raise StoreError(f"collection {collection!r} does not exist at {edge.path}; nothing to snapshot")
        points = edge.count(collection)
        manifest = {"format": FORMAT, "collection": collection, "points": points, "created": time.time()}
        out = Path(path)
        tmp = out.with_name(out.name + ".partial")
        with edge.quiesced(collection) as (shard, meta):  # no write until the last file is read
            sizes = _shard_sizes(shard)
            manifest["sizes"] = sizes
            with tarfile.open(tmp, "w") as tar:
                _add_bytes(tar, _MANIFEST, json.dumps(manifest, indent=2).encode())
                tar.add(meta, arcname=_META)
                for rel, (_, used) in sizes.items():
                    _add_file(tar, shard / rel, f"{_SHARD}/{rel}", used)
        os.replace(tmp, out)
    finally:
        if owned:
            edge.close()
    return SnapshotReport(collection, str(out), points, out.stat().st_size, time.perf_counter() - start)


def _shard_sizes(shard: Path) -> dict[str, tuple[int, int]]:
    """Each file of the shard: its size and the length up to its last block holding data
    (Edge preallocates its WAL and storage files; their zero tails are not stored)."""
    out = {}
    for f in sorted(p for p in shard.rglob("*") if p.is_file()):
        out[f.relative_to(shard).as_posix()] = (f.stat().st_size, _used_length(f))
    return out


def _used_length(path: Path) -> int:
    size = path.stat().st_size
    with open(path, "rb") as f:
        end = size
        while end > 0:
            start = max(0, end - _BLOCK)
            f.seek(start)
            block = f.read(end - start)
            if block.strip(b"\0"):
                return start + len(block.rstrip(b"\0"))
            end = start
    return 0


def _add_file(tar: tarfile.TarFile, path: Path, name: str, length: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = length
    info.mtime = int(path.stat().st_mtime)
    with open(path, "rb") as f:
        tar.addfile(info, f)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def restore_snapshot(
    store: EdgeStore | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    collection: str | None = None,
    overwrite: bool = False,
) -> SnapshotReport:
    """Restore a snapshot file into an embedded store.

    Args:
        store: An open :class:`~m3retriever.store.edge.EdgeStore` or its directory.
        path: The snapshot file.
        collection: The collection to restore into (default: the snapshot's).
        overwrite: Replace a collection of that name that holds points.

    Raises:
        InputError: if the file is missing or not a snapshot of this format.
        StoreError: if the collection exists with points and ``overwrite`` is off, or the
            restored shard does not hold the points the manifest lists.
    """
    start = time.perf_counter()
    manifest = _read_manifest(Path(path))
    dest = collection or str(manifest["collection"])
    edge, owned = _edge(store)
    staging = edge.path / f".restore-{dest}"
    try:
        if edge.has_collection(dest) and edge.count(dest) and not overwrite:
            raise StoreError(
                f"collection {dest!r} at {edge.path} holds {edge.count(dest)} points; restore into "
                "another collection (--collection), or pass --overwrite (overwrite=True) to replace it"
            )
        shutil.rmtree(staging, ignore_errors=True)
        with tarfile.open(path) as tar:
            _extract(tar, staging)
        for rel, (size, _) in (manifest.get("sizes") or {}).items():
            os.truncate(_inside(staging / _SHARD, rel), size)  # the zero tail, as holes
        meta = json.loads((staging / _META).read_text())
        if isinstance(meta.get("spec"), dict):
            meta["spec"]["name"] = dest
        (staging / _META).write_text(json.dumps(meta, indent=2))
        with edge.quiesced(dest) as (shard, meta_file):
            edge.drop_collection(dest)
            os.replace(staging / _SHARD, shard)
            os.replace(staging / _META, meta_file)  # last: its presence marks a complete collection
        points = edge.count(dest)
        if points != manifest["points"]:
            raise StoreError(
                f"restored collection {dest!r} holds {points} points but the snapshot lists "
                f"{manifest['points']}; the file is damaged"
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if owned:
            edge.close()
    return SnapshotReport(dest, os.fspath(path), points, Path(path).stat().st_size, time.perf_counter() - start)


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"snapshot {path} does not exist")
    try:
        with tarfile.open(path) as tar:
            member = tar.extractfile(_MANIFEST)
            manifest = json.loads(member.read()) if member is not None else {}
    except (tarfile.TarError, KeyError, ValueError) as exc:
        raise InputError(f"{path} is not an m3retriever snapshot ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{path} is not an m3retriever snapshot of format {FORMAT!r}")
    return manifest


def _inside(root: Path, name: str) -> Path:
    """``root / name``, refusing a name that leaves ``root``."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or ".." in parts:
        raise InputError(f"snapshot member {name!r} is not a path inside the snapshot")
    return root.joinpath(*parts)


def _extract(tar: tarfile.TarFile, into: Path) -> None:
    """Extract only regular files and folders that stay inside ``into``."""
    for member in tar.getmembers():
        target = _inside(into, member.name)
        if not (member.isfile() or member.isdir()):
            raise InputError(f"snapshot member {member.name!r} is not a plain file or folder")
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        if source is None:  # pragma: no cover - a regular file always has data
            continue
        with source, open(target, "wb") as out:
            _copy_sparse(source, out, member.size)


def _copy_sparse(source: Any, out: Any, size: int) -> None:
    """Copy ``size`` bytes, leaving blocks of zeros as holes (as Edge's own files have them)."""
    zeros = bytes(_BLOCK)
    while True:
        block = source.read(_BLOCK)
        if not block:
            break
        if block == zeros[: len(block)]:
            out.seek(len(block), os.SEEK_CUR)
        else:
            out.write(block)
    out.truncate(size)
