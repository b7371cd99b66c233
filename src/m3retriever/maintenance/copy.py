"""Copy a collection between stores without re-encoding: every point with all its vectors and
its payload, and everything kept with the collection (fingerprint, description, BM25 length
totals, saved search defaults, build settings).

The copy streams pages of points in id order from the source and upserts them into the target.
Point ids are stable, so it is idempotent: running it again rewrites the same points and never
duplicates one. After each page the target records where the copy stands (``copy`` in its
metadata); an interrupted copy run again with the same source starts from there. At the end the
collection's metadata is written, the counts are compared and a sample of points is checked
vector by vector; only then does the checkpoint go.

Every named vector a point holds is copied (whatever branches the collection has), and the
target collection is created from the description the source keeps of itself, with other
index settings (quantization, on-disk storage, HNSW shape) when they are asked for.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

from m3retriever.config.sizing import check_index_values
from m3retriever.errors import ConfigError, StoreError
from m3retriever.opening import OpenedCollection
from m3retriever.store import open_store
from m3retriever.store.collection_names import check_name
from m3retriever.store.index_settings import INDEX_SETTINGS, check_index_settings
from m3retriever.store.schema import COPYING_KEY, ScoredRecord, Store, StoredPoint
from m3retriever.types import SparseVector

__all__ = ["CopyReport", "copy_collection"]

logger = logging.getLogger(__name__)

_CHECKPOINT = COPYING_KEY
# Kept by the target itself: created from the source's, never copied over it (``index``:
# qdrant-client's record of the target's index settings, which may differ from the source's).
_OWN_KEYS = frozenset({"fingerprint", "spec", "index"})

StoreLike = Store | str | os.PathLike[str]


@dataclass(frozen=True)
class CopyReport:
    """What :func:`copy_collection` did.

    Attributes:
        collection: The target collection.
        points: Points written by this run.
        resumed: Whether this run continued an interrupted copy.
        complete: Whether every point is copied and verified (``False``: stopped after
            ``max_batches``; run again to continue).
        source_count: Points in the source.
        target_count: Points in the target at the end.
        verified: Points whose vectors and payload were compared with the source's.
        seconds: Wall time of the copy (without ``optimize``).
        optimize_seconds: Wall time of building the target's indexes.
    """

    collection: str
    points: int
    resumed: bool
    complete: bool
    source_count: int
    target_count: int
    verified: int
    seconds: float
    optimize_seconds: float = 0.0

    @property
    def points_per_second(self) -> float:
        """Points written per second of copying."""
        return self.points / self.seconds if self.seconds > 0 else 0.0


def copy_collection(
    source: OpenedCollection,
    target: StoreLike,
    *,
    to_collection: str | None = None,
    batch: int = 512,
    max_batches: int | None = None,
    verify_sample: int = 64,
    optimize: bool = True,
    index_settings: Mapping[str, Any] | None = None,
) -> CopyReport:
    """Copy a collection to ``target`` with its vectors, payloads and metadata.

    Args:
        source: The collection to copy (opened with ``must_exist``; its writes wait until the
            copy is done).
        target: An open :class:`~m3retriever.store.Store`, or a location (a directory,
            ``":memory:"`` or a Qdrant URL; opened here and closed afterwards).
        to_collection: The target collection's name (default: the same).
        batch: Points per page read and written.
        max_batches: Stop after this many pages (the copy stays resumable); ``None``: copy all.
        verify_sample: Points compared vector by vector with the source at the end.
        optimize: Build the target's indexes at the end (Qdrant Edge needs it for HNSW).
        index_settings: Index settings of a target created here, instead of the source's
            (``quantization``, ``vectors_on_disk``, ``payload_on_disk``, ``hnsw_m``,
            ``hnsw_ef_construct``; ``None`` values: the source's): a way to quantize a
            collection, or to change its HNSW graph, without re-encoding it. An existing
            target must have been created with them.

    Returns:
        A :class:`CopyReport`.

    Raises:
        CollectionNotFoundError: if the source collection does not exist.
        StoreError: if the target is the source, or the counts or the sample differ at the end.
        FingerprintMismatchError: if the target collection exists and was built with other
            encoder settings (naming each setting that differs).
        ConfigError: for a bad index setting, or one an existing target was created without.
    """
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    asked = _index_settings(index_settings)
    collection = source.name
    dest = check_name(to_collection, "target collection name") if to_collection else collection
    source.require()
    src = source.store
    dst, owns_dst = (target, False) if isinstance(target, Store) else (open_store(target), True)
    try:
        if src is dst and dest == collection:
            raise StoreError(f"cannot copy collection {collection!r} onto itself; name another target collection")
        with source.write_lock:
            return _copy(src, dst, collection, dest, batch, max_batches, verify_sample, optimize, asked)
    finally:
        if owns_dst:
            dst.close()


def _copy(
    src: Store,
    dst: Store,
    name: str,
    dest: str,
    batch: int,
    max_batches: int | None,
    sample: int,
    optimize: bool,
    asked: Mapping[str, Any],
) -> CopyReport:
    start = time.perf_counter()
    spec = src.stored_spec(name)
    if spec is None:  # pragma: no cover - the caller checked it exists
        raise StoreError(f"collection {name!r} at {src.where} has no description")
    origin = f"{src.where}/{name}"
    if asked and dst.has_collection(dest):
        check_index_settings(dest, dst.index_settings(dest), asked)
    dst.ensure_collection(replace(spec, name=dest, **asked))  # refuses one built otherwise, naming the setting
    state = dst.metadata(dest).get(_CHECKPOINT)
    resumed = isinstance(state, Mapping) and state.get("source") == origin
    offset = state.get("offset") if resumed and isinstance(state, Mapping) else None
    if not resumed:  # marked unfinished before the first point: openers refuse it until the end
        dst.set_metadata(dest, {_CHECKPOINT: {"source": origin, "offset": None}})
    written = pages = 0
    complete = False
    while max_batches is None or pages < max_batches:
        records, offset = src.scroll_page(name, offset, limit=batch, with_vectors=True)
        dst.upsert(dest, [_point(r) for r in records])
        written += len(records)
        pages += 1
        if offset is None:
            complete = True
            break
        dst.set_metadata(dest, {_CHECKPOINT: {"source": origin, "offset": offset}})
        logger.info("copy %s -> %s: %d points written", origin, dest, written)
    dst.flush(dest)
    source_count, target_count, verified = src.count(name), dst.count(dest), 0
    if complete:
        _check_counts(name, dest, source_count, target_count)
        verified = _verify_sample(src, dst, name, dest, sample)
        _copy_metadata(src.metadata(name), dst, dest)
    seconds = time.perf_counter() - start
    opt = time.perf_counter()
    if complete and optimize:
        dst.optimize(dest)
    return CopyReport(
        dest, written, resumed, complete, source_count, target_count, verified, seconds, time.perf_counter() - opt
    )


def _index_settings(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The index settings given (``None`` ones dropped), checked as a configuration's are."""
    given = {k: v for k, v in (values or {}).items() if v is not None}
    unknown = sorted(set(given) - set(INDEX_SETTINGS))
    if unknown:
        raise ConfigError(f"{unknown} are not index settings; a copy can set {list(INDEX_SETTINGS)}")
    check_index_values(SimpleNamespace(**{**dict.fromkeys(INDEX_SETTINGS), "expected_chunks": None, **given}))
    return given


def _point(record: ScoredRecord) -> StoredPoint:
    """The record as a point to write: every named vector it holds, as it is."""
    return StoredPoint(id=record.id, payload=dict(record.payload), vectors=dict(record.vectors))


def _copy_metadata(meta: Mapping[str, Any], dst: Store, dest: str) -> None:
    """Make the target's metadata the source's (its own fingerprint and description aside);
    the checkpoint goes with it, in the same write."""
    keys = (set(meta) | set(dst.metadata(dest))) - _OWN_KEYS
    dst.set_metadata(dest, {key: meta.get(key) for key in sorted(keys)})


def _check_counts(name: str, dest: str, source_count: int, target_count: int) -> None:
    if source_count != target_count:
        raise StoreError(
            f"copy of collection {name!r} ended with {target_count} points in {dest!r} but "
            f"{source_count} in the source: the target holds points the source does not (or the "
            "source changed during the copy); copy into an empty collection, or run the copy again"
        )


def _verify_sample(src: Store, dst: Store, name: str, dest: str, sample: int) -> int:
    """Compare the first ``sample`` points (in id order) of both, vectors and payloads."""
    if sample <= 0:
        return 0
    ours, _ = src.scroll_page(name, None, limit=sample, with_vectors=True)
    theirs = {r.id: r for r in dst.scroll_page(dest, None, limit=sample, with_vectors=True)[0]}
    for record in ours:
        other = theirs.get(record.id)
        if other is None or dict(other.payload) != dict(record.payload) or not _same_vectors(record, other):
            raise StoreError(
                f"copy of collection {name!r}: point {record.id} differs in {dest!r} from the "
                "source after the copy; run the copy again"
            )
    return len(ours)


def _same_vectors(a: ScoredRecord, b: ScoredRecord) -> bool:
    if set(a.vectors) != set(b.vectors):
        return False
    return all(_close(a.vectors[k], b.vectors[k]) for k in a.vectors)


def _close(x: Any, y: Any) -> bool:
    """Equal up to float32 rounding (the engines keep float32; cosine vectors are re-normalised)."""
    if isinstance(x, SparseVector) or isinstance(y, SparseVector):
        if not (isinstance(x, SparseVector) and isinstance(y, SparseVector)):
            return False
        xs, ys = dict(zip(x.indices, x.values)), dict(zip(y.indices, y.values))
        return xs.keys() == ys.keys() and all(_close(xs[i], ys[i]) for i in xs)
    if isinstance(x, Sequence) and isinstance(y, Sequence):
        return len(x) == len(y) and all(_close(u, v) for u, v in zip(x, y))
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return math.isclose(float(x), float(y), rel_tol=1e-5, abs_tol=1e-6)
    return bool(x == y)
