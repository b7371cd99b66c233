"""Snapshots of an embedded (Qdrant Edge) collection, and their restore.

A snapshot is one tar file holding the collection's Edge shard (its segments and write-ahead
log, flushed and closed while they are read; the zero tails of the files Edge preallocates
are left out and restored as holes), the collection's metadata file (fingerprint,
description, BM25 length totals, saved search defaults), a manifest (format, collection,
point count, the size and SHA-256 of every member) and the SHA-256 of the manifest.

A snapshot file is untrusted input (it travels between people and machines). Restore reads
the whole file first and refuses it, before anything is created or changed, unless every
member is listed with its checksum and matches it, nothing else is in it, the tar's padding
and end blocks are intact, and the manifest's collection name follows the name rule. It then
unpacks into a build folder of the store, checks again, opens the new shard and counts its
points, and only then swaps it in (:mod:`m3retriever.store.replace`): the collection it
replaces (with ``overwrite``) is never deleted before that, and a restore cut short is
finished or rolled back by whatever opens the store next.

A Qdrant server makes its own snapshots (``POST /collections/<name>/snapshots``; see
docs/moving-to-a-server.md); our metadata lives in the server collection's metadata and
travels with them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from m3retriever.errors import ConfigError, DamagedSnapshotError, InputError, StoreError
from m3retriever.maintenance.snapshot_format import (
    FORMAT,
    MANIFEST,
    MANIFEST_SUM,
    META,
    SHARD,
    checked_manifest,
    shard_member,
)
from m3retriever.opening import OpenedCollection
from m3retriever.store import open_store
from m3retriever.store.collection_names import check_name
from m3retriever.store.edge import EdgeStore
from m3retriever.store.replace import META as BUILD_META
from m3retriever.store.replace import SHARD as BUILD_SHARD

__all__ = ["SnapshotReport", "check_embedded", "restore_snapshot", "snapshot_collection"]

logger = logging.getLogger(__name__)

_BLOCK = 1 << 20
_DIGEST = "restored_from"  # the SHA-256 of the snapshot's manifest, kept in the collection's metadata


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
    opened = open_store(check_embedded(store))
    assert isinstance(opened, EdgeStore)
    return opened, True


def check_embedded(location: str | os.PathLike[str]) -> str:
    """``location`` if it names an embedded store (a directory).

    Raises:
        ConfigError: for ``:memory:`` or a server URL, saying what to use instead.
    """
    where = os.fspath(location)
    if where == ":memory:" or where.startswith(("http://", "https://")):
        raise _not_embedded(where)
    return where


def _not_embedded(where: str) -> ConfigError:
    return ConfigError(
        f"snapshots here are of embedded stores (a directory), not {where!r}: a Qdrant "
        "server makes its own with POST /collections/<name>/snapshots (see "
        "docs/moving-to-a-server.md), or copy the collection with `m3retriever collection copy`"
    )


class _Hashing(io.RawIOBase):
    """A file read for the tar while its SHA-256 is computed (each byte read once)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.sha.update(data)
        return data


def snapshot_collection(source: OpenedCollection, path: str | os.PathLike[str]) -> SnapshotReport:
    """Write a snapshot of an embedded collection to the file ``path``.

    Args:
        source: The collection (opened with ``must_exist``, so a missing one creates nothing);
            its writes wait until the snapshot is written.
        path: The snapshot file to write (replaced if it exists, once the new one is complete).

    Raises:
        CollectionNotFoundError: if the collection does not exist.
        ConfigError: if its store is not an embedded store.
    """
    start = time.perf_counter()
    edge, collection = source.store, source.name
    if not isinstance(edge, EdgeStore):
        raise _not_embedded(source.where)
    source.require()
    out = Path(path)
    tmp = out.with_name(out.name + ".partial")
    try:
        points = edge.count(collection)
        members: dict[str, dict[str, Any]] = {}
        # no write until the last file is read
        with source.write_lock, edge.quiesced(collection) as (shard, meta):
            with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:  # no extension blocks
                members[META] = _add_file(tar, meta, META, meta.stat().st_size)
                for f in sorted(p for p in shard.rglob("*") if p.is_file()):
                    rel = f.relative_to(shard).as_posix()
                    size = f.stat().st_size
                    members[f"{SHARD}/{rel}"] = {**_add_file(tar, f, f"{SHARD}/{rel}", _used_length(f)), "full": size}
                manifest = {
                    "format": FORMAT,
                    "collection": collection,
                    "points": points,
                    "created": time.time(),
                    "members": members,
                }
                data = json.dumps(manifest, indent=2).encode()
                _add_bytes(tar, MANIFEST, data)
                _add_bytes(tar, MANIFEST_SUM, hashlib.sha256(data).hexdigest().encode())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return SnapshotReport(collection, str(out), points, out.stat().st_size, time.perf_counter() - start)


def _used_length(path: Path) -> int:
    """The length up to the file's last block holding data (Edge preallocates its WAL and
    storage files; their zero tails are not stored)."""
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


def _add_file(tar: tarfile.TarFile, path: Path, name: str, length: int) -> dict[str, Any]:
    info = tarfile.TarInfo(name)
    info.size = length
    info.mtime = int(path.stat().st_mtime)
    with open(path, "rb") as f:
        hashing = _Hashing(f)
        tar.addfile(info, hashing)  # type: ignore[arg-type]
    return {"size": length, "sha256": hashing.sha.hexdigest()}


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
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
    """Restore a snapshot file into an embedded store (see the module docstring for the checks
    and the order: nothing changes until the new collection is verified).

    Args:
        store: An open :class:`~m3retriever.store.edge.EdgeStore` or its directory.
        path: The snapshot file.
        collection: The collection to restore into (default: the snapshot's).
        overwrite: Replace a collection of that name that holds points.

    Raises:
        InputError: if the file is missing or not a snapshot of this format.
        DamagedSnapshotError: if it is damaged, truncated or crafted (nothing changed).
        ConfigError: if the collection name breaks the name rule.
        StoreError: if the collection exists with points and ``overwrite`` is off.
    """
    start = time.perf_counter()
    snapshot = Path(path)
    manifest = _verify(snapshot)  # reads only: a bad file changes nothing
    dest = check_name(collection, "collection name") if collection is not None else manifest["collection"]
    edge, owned = _edge(store)
    try:
        held = edge.count(dest) if edge.has_collection(dest) else 0
        if (
            held
            and not overwrite
            and held == manifest["points"]
            and edge.metadata(dest).get(_DIGEST) == manifest[_DIGEST]
        ):
            # A restore killed after its swap was decided, finished when the store opened.
            logger.warning("collection %r already holds this snapshot (an earlier restore finished it)", dest)
            return SnapshotReport(dest, os.fspath(path), held, snapshot.stat().st_size, time.perf_counter() - start)
        if held and not overwrite:
            raise StoreError(
                f"collection {dest!r} at {edge.path} holds {held} points; restore into "
                "another collection (--collection), or pass --overwrite (overwrite=True) to replace it"
            )
        folder = edge.build_folder(dest)
        try:
            _unpack(snapshot, manifest, folder, dest)
            points = edge.open_build(dest)
            if points != manifest["points"]:
                raise DamagedSnapshotError(
                    f"snapshot {snapshot} is damaged: its shard holds {points} points, its manifest "
                    f"lists {manifest['points']}; nothing was changed"
                )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        edge.commit_build(dest)
    finally:
        if owned:
            edge.close()
    return SnapshotReport(dest, os.fspath(path), points, snapshot.stat().st_size, time.perf_counter() - start)


def _damaged(path: Path, why: str) -> DamagedSnapshotError:
    return DamagedSnapshotError(
        f"snapshot {path} is damaged or not one this version made ({why}); nothing was changed: "
        "make the snapshot again or copy the file again"
    )


def _open_tar(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise InputError(
            f"snapshot {path} does not exist or is not a file; pass the file `m3retriever collection snapshot` wrote"
        )
    try:
        return tarfile.open(path, "r:")
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        raise _damaged(path, f"not a readable tar file: {exc}") from None


def _verify(path: Path) -> dict[str, Any]:
    """The manifest, once every byte of the snapshot has been checked against it."""
    with _open_tar(path) as tar:
        try:
            members = tar.getmembers()
            raw = _read_member(tar, MANIFEST)
            digest = _read_member(tar, MANIFEST_SUM).decode("ascii", "replace").strip()
        except KeyError as exc:
            raise _damaged(path, f"no {exc.args[0].split()[1]} in it") from None
        except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
            raise _damaged(path, str(exc)) from None
        if hashlib.sha256(raw).hexdigest() != digest:
            raise _damaged(path, "its manifest does not match the manifest's checksum")
        manifest = {**checked_manifest(raw, path, _damaged), _DIGEST: digest}
        listed = manifest["members"]
        found = {m.name for m in members}
        if found != set(listed) | {MANIFEST, MANIFEST_SUM} or len(members) != len(found):
            extra = sorted(found - set(listed) - {MANIFEST, MANIFEST_SUM})
            missing = sorted(set(listed) - found)
            raise _damaged(path, f"members missing {missing[:3]} or not listed {extra[:3]}")
        for m in members:
            if not m.isfile():
                raise _damaged(path, f"member {m.name!r} is not a plain file")
            if m.name in listed:
                _check_member(tar, m, listed[m.name], path)
        _check_padding(path, members)
    return manifest


def _read_member(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    if member is None:
        raise ValueError(f"{name} is not a file")
    data = member.read(1 << 24)
    if member.read(1):
        raise ValueError(f"{name} is larger than 16 MB")
    return data


def _check_member(tar: tarfile.TarFile, member: tarfile.TarInfo, listed: dict[str, Any], path: Path) -> None:
    if member.size != listed["size"]:
        raise _damaged(path, f"member {member.name!r} has {member.size} bytes, the manifest lists {listed['size']}")
    source = tar.extractfile(member)
    assert source is not None
    sha = hashlib.sha256()
    try:
        while block := source.read(_BLOCK):
            sha.update(block)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise _damaged(path, f"member {member.name!r} cannot be read: {exc}") from None
    if sha.hexdigest() != listed["sha256"]:
        raise _damaged(path, f"member {member.name!r} does not match its checksum")


def _check_padding(path: Path, members: list[tarfile.TarInfo]) -> None:
    """The file is exactly its members' headers, data and zero padding, then the zero end
    blocks: no flipped byte or truncation goes unseen (headers carry their own checksum, data
    the manifest's; this checks the rest)."""
    size = path.stat().st_size
    at = 0
    with open(path, "rb") as f:
        for m in members:
            if m.offset != at or m.offset_data != at + tarfile.BLOCKSIZE:
                raise _damaged(path, f"unexpected blocks before member {m.name[:80]!r}")
            end = m.offset_data + m.size
            at = -(-end // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            f.seek(end)
            if f.read(at - end).strip(b"\0"):
                raise _damaged(path, "non-zero bytes in a member's padding")
        if size % tarfile.RECORDSIZE or size - at < 2 * tarfile.BLOCKSIZE:
            raise _damaged(path, f"it is truncated ({size} bytes)")
        f.seek(at)
        while block := f.read(_BLOCK):
            if block.strip(b"\0"):
                raise _damaged(path, "non-zero bytes after its last member")


def _unpack(path: Path, manifest: dict[str, Any], folder: Path, dest: str) -> None:
    """Write the shard and metadata file into the build folder, checking each checksum again
    (the file may have changed since it was verified)."""
    listed = manifest["members"]
    with _open_tar(path) as tar:
        for member in tar.getmembers():
            if member.name in (MANIFEST, MANIFEST_SUM):
                continue
            if member.name not in listed or not member.isfile():
                raise _damaged(path, f"member {member.name!r} changed since it was checked")
            target = (
                folder / BUILD_META
                if member.name == META
                else shard_member(folder / BUILD_SHARD, member.name, path, _damaged)
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            with source, open(target, "wb") as out:
                sha = _copy_sparse(source, out, int(listed[member.name].get("full", member.size)))
            if sha != listed[member.name]["sha256"]:
                raise _damaged(path, f"member {member.name!r} changed since it was checked")
    meta_file = folder / BUILD_META
    meta = json.loads(meta_file.read_text())
    if isinstance(meta.get("spec"), dict):
        meta["spec"]["name"] = dest
    meta[_DIGEST] = manifest[_DIGEST]  # which snapshot this collection was restored from
    meta_file.write_text(json.dumps(meta, indent=2))


def _copy_sparse(source: IO[bytes], out: IO[bytes], size: int) -> str:
    """Copy a member, leaving blocks of zeros as holes (as Edge's own files have them) and
    extending it to ``size`` (its zero tail); the SHA-256 of the bytes read."""
    zeros = bytes(_BLOCK)
    sha = hashlib.sha256()
    while block := source.read(_BLOCK):
        sha.update(block)
        if block == zeros[: len(block)]:
            out.seek(len(block), os.SEEK_CUR)
        else:
            out.write(block)
    out.truncate(size)
    return sha.hexdigest()
