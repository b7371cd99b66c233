"""Qdrant Edge translator: the embedded default (Qdrant's engine in-process, on local disk).

Layout of a store directory::

    <path>/.m3retriever.lock        our inter-process lock (Edge takes none without its WAL
                                    and only a WAL lock with it; we want a clear error)
    <path>/<collection>/            the Edge shard (segments, WAL, edge_config.json)
    <path>/<collection>.m3r.json    our metadata: the encoder fingerprint and the spec
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, Iterator, Mapping, Sequence

import numpy as np

from m3retriever.errors import StoreError, StoreInUseError
from m3retriever.filters import Filter, payload_key, translate
from m3retriever.store.schema import (
    BM25,
    DENSE,
    INDEXED_FIELDS,
    SPARSE,
    CollectionSpec,
    HybridQuery,
    ScoredRecord,
    Store,
    StoredPoint,
    check_fingerprint,
    to_record,
)
from m3retriever.types import SparseVector

__all__ = ["EdgeStore"]

logger = logging.getLogger(__name__)

_DISTANCES = {"cosine": "Cosine", "dot": "Dot", "euclid": "Euclid", "manhattan": "Manhattan"}


def _edge() -> Any:
    import qdrant_edge

    return qdrant_edge


def _in_use_message(directory: Path, why: str) -> str:
    return (
        f"the store at {directory} is in use by another process or another open Retriever "
        f"({why}). Close the other user first, or point this one at a Qdrant server by URL to "
        "share a collection."
    )


class _DirLock:
    """An exclusive, non-blocking advisory lock on a file (released when closed or on exit).

    Raises:
        StoreInUseError: if another process (or another open store in this one) holds it.
        StoreError: if the lock file cannot be opened or locked, naming the path and the fix.
    """

    _ATTEMPTS = 5

    def __init__(self, path: Path) -> None:
        self.path = path
        for _ in range(self._ATTEMPTS):
            fh = self._open()
            self._acquire(fh)
            if self._is_current(fh):
                break
            # Deleted or replaced between our open and our lock: we hold a lock nobody else
            # will see. Drop it and lock the file that is there now.
            fh.close()
        else:
            raise StoreError(
                f"the lock file {path} was deleted or replaced {self._ATTEMPTS} times while this "
                "process was locking it; stop whatever removes .m3retriever.lock (never delete "
                "it while the store is in use) and retry"
            )
        self._fh = fh
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
        except OSError:  # the pid is informational; the lock is what matters
            logger.debug("could not write the pid into %s", path, exc_info=True)

    def _open(self) -> IO[str]:
        try:
            return open(self.path, "a+")  # noqa: SIM115 - held for the store's lifetime
        except PermissionError:
            raise StoreError(
                f"cannot create or open the lock file {self.path}: permission denied. The "
                "embedded store writes into its directory: make "
                f"{self.path.parent} writable by this user, or pick a writable --location "
                "(M3R_LOCATION)"
            ) from None
        except OSError as exc:
            raise StoreError(
                f"cannot create or open the lock file {self.path} ({exc.strerror or exc}); "
                "remove whatever is at that path, or pick another --location (M3R_LOCATION)"
            ) from None

    def _acquire(self, fh: IO[str]) -> None:
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.close()
            raise StoreInUseError(
                _in_use_message(self.path.parent, "lock file .m3retriever.lock is held")
            ) from exc
        except ImportError:  # pragma: no cover - non-POSIX
            import msvcrt

            try:
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            except OSError as exc:
                fh.close()
                raise StoreInUseError(
                    _in_use_message(self.path.parent, "lock file .m3retriever.lock is held")
                ) from exc
        except OSError as exc:
            fh.close()
            raise StoreError(
                f"cannot lock {self.path} ({exc.strerror or exc}); the file system may not "
                "support locks: put the store on a local disk, or use a Qdrant server by URL"
            ) from None

    def _is_current(self, fh: IO[str]) -> bool:
        """Whether ``self.path`` still names the file we locked."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fh.fileno())
        return (held.st_ino, held.st_dev) == (now.st_ino, now.st_dev)

    def release(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def _store_dir(path: str | os.PathLike[str]) -> Path:
    """Resolve and create the directory of an embedded store.

    Raises:
        StoreError: if it is a file, lies under a file, or cannot be created; naming the path
            and the fix.
    """
    where = Path(path).expanduser().resolve()
    try:
        where.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StoreError(
            f"the store location {where} is a file, not a directory; pass a directory for the "
            "embedded store (created if missing), ':memory:' or a Qdrant URL"
        ) from None
    except NotADirectoryError:
        blocker = next((a for a in where.parents if a.exists() and not a.is_dir()), None)
        raise StoreError(
            f"cannot create the store directory {where}: {blocker or 'a parent'} is a file, not "
            "a directory; pass a location whose parent folders are directories"
        ) from None
    except PermissionError as exc:
        raise StoreError(
            f"cannot create the store directory {where}: permission denied on "
            f"{exc.filename or where}; pick a writable --location (M3R_LOCATION) or fix the "
            "permissions"
        ) from None
    except OSError as exc:
        raise StoreError(
            f"cannot create the store directory {where} ({exc.strerror or exc}); pick another "
            "--location (M3R_LOCATION)"
        ) from None
    return where


def _is_lock_error(exc: Exception) -> bool:
    """Whether an engine error says the shard's WAL is locked by someone else."""
    text = str(exc).lower()
    return "wal" in text and any(w in text for w in ("wouldblock", "lock", "temporarily unavailable"))


class _EdgeFilters:
    """qdrant_edge constructors for :func:`m3retriever.filters.translate`."""

    def __init__(self) -> None:
        self.q = _edge()

    def eq(self, key: str, value: Any) -> Any:
        # The binding reads a Python bool as the integer 0/1 (bool is an int subclass), so
        # {"flag": True} would match the integer 1 and never the boolean; numpy's bool is
        # not an int and arrives as a JSON boolean.
        if isinstance(value, bool):
            value = np.bool_(value)
        return self.q.FieldCondition(key, match=self.q.MatchValue(value))

    def any_of(self, key: str, values: list[Any]) -> Any:
        return self.q.FieldCondition(key, match=self.q.MatchAny(values))

    def range(self, key: str, gte: Any, gt: Any, lte: Any, lt: Any) -> Any:
        return self.q.FieldCondition(key, range=self.q.RangeFloat(gte=gte, gt=gt, lte=lte, lt=lt))

    def must(self, conditions: list[Any]) -> Any:
        return self.q.Filter(must=conditions)

    def must_not(self, conditions: list[Any]) -> Any:
        return self.q.Filter(must_not=conditions)


def to_edge_filter(flt: Filter | None) -> Any:
    """Translate a neutral filter into a ``qdrant_edge.Filter``."""
    return translate(flt, _EdgeFilters())


def _vector(q: Any, v: Sequence[float] | SparseVector) -> Any:
    if isinstance(v, SparseVector):
        return q.SparseVector(list(v.indices), list(v.values))
    return [float(x) for x in v]



class EdgeStore(Store):
    """Collections as Qdrant Edge shards under one directory.

    Args:
        path: Directory holding the collections (created if missing).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = _store_dir(path)
        self._lock = _DirLock(self.path / ".m3retriever.lock")
        self._shards: dict[str, Any] = {}
        self._mutex = threading.RLock()

    # -- collection management -------------------------------------------------------
    def _meta_path(self, name: str) -> Path:
        return self.path / f"{name}.m3r.json"

    def collection_fingerprint(self, name: str) -> Mapping[str, Any] | None:
        meta = self._meta_path(name)
        if not meta.exists():
            return None
        return json.loads(meta.read_text())["fingerprint"]

    def ensure_collection(self, spec: CollectionSpec) -> None:
        with self._mutex:
            existing = self.collection_fingerprint(spec.name)
            if existing is not None:
                check_fingerprint(spec.name, str(self.path), existing, spec.fingerprint)
                self._shard(spec.name)
                return
            q = _edge()
            shard_dir = self.path / spec.name
            if shard_dir.exists():  # a half-created collection from a crash: start over
                shutil.rmtree(shard_dir)
            vectors = {}
            if spec.dense_dim is not None:
                vectors[DENSE] = q.EdgeVectorParams(
                    size=spec.dense_dim, distance=getattr(q.Distance, _DISTANCES[spec.distance])
                )
            sparse = {}
            if spec.sparse:
                sparse[SPARSE] = q.EdgeSparseVectorParams(
                    modifier=q.Modifier.Idf if spec.sparse_idf else None
                )
            if spec.bm25:
                sparse[BM25] = q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)
            config = q.EdgeConfig(
                vectors=vectors or None,
                sparse_vectors=sparse or None,
                hnsw_config=q.HnswIndexConfig(
                    m=spec.hnsw_m,
                    ef_construct=spec.hnsw_ef_construct,
                    full_scan_threshold=spec.full_scan_threshold_kb,
                ),
                wal_enabled=True,
            )
            shard = q.EdgeShard.create(str(shard_dir), config)
            for field in INDEXED_FIELDS + tuple(payload_key(f) for f in spec.indexed_fields):
                shard.update(q.UpdateOperation.create_field_index(field, q.PayloadSchemaType.Keyword))
            shard.update(
                q.UpdateOperation.create_field_index("chunk_index", q.PayloadSchemaType.Integer)
            )
            shard.flush()
            self._shards[spec.name] = shard
            # The metadata file is written last: its presence marks a complete collection.
            meta = {"fingerprint": dict(spec.fingerprint), "spec": asdict(spec)}
            tmp = self._meta_path(spec.name).with_suffix(".tmp")
            tmp.write_text(json.dumps(meta, indent=2, default=list))
            os.replace(tmp, self._meta_path(spec.name))

    def _shard(self, name: str) -> Any:
        with self._mutex:
            if name not in self._shards:
                if self.collection_fingerprint(name) is None:
                    raise StoreError(
                        f"collection {name!r} does not exist at {self.path}; ingest documents first"
                    )
                try:
                    self._shards[name] = _edge().EdgeShard.load(str(self.path / name))
                except Exception as exc:
                    if _is_lock_error(exc):
                        raise StoreInUseError(
                            _in_use_message(
                                self.path,
                                f"collection {name!r} is open elsewhere; was .m3retriever.lock "
                                "deleted while the store was in use?",
                            )
                        ) from exc
                    raise StoreError(f"cannot open collection {name!r} at {self.path}: {exc}") from exc
            return self._shards[name]

    # -- writes ----------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        q = _edge()
        edge_points = []
        for p in points:
            vec: dict[str, Any] = {}
            if p.dense is not None:
                vec[DENSE] = [float(x) for x in p.dense]
            if p.sparse is not None:
                vec[SPARSE] = _vector(q, p.sparse)
            if p.bm25 is not None:
                vec[BM25] = _vector(q, p.bm25)
            edge_points.append(q.Point(p.id, vec, dict(p.payload)))
        with self._mutex:
            self._shard(name).update(q.UpdateOperation.upsert_points(edge_points))

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            with self._mutex:
                self._shard(name).update(_edge().UpdateOperation.delete_points(list(ids)))

    def delete_by_filter(self, name: str, flt: Filter) -> None:
        with self._mutex:
            self._shard(name).update(
                _edge().UpdateOperation.delete_points_by_filter(to_edge_filter(flt))
            )

    def flush(self, name: str) -> None:
        with self._mutex:
            self._shard(name).flush()

    def optimize(self, name: str) -> None:
        with self._mutex:
            self._shard(name).optimize()

    # -- reads -----------------------------------------------------------------------
    def _request(self, hq: HybridQuery) -> Any:
        q = _edge()
        flt = to_edge_filter(hq.filter)
        params = q.SearchParams(hnsw_ef=hq.hnsw_ef, exact=hq.exact)
        with_vector = list(hq.with_vectors) if hq.with_vectors else False
        if len(hq.branches) == 1:
            b = hq.branches[0]
            return q.QueryRequest(
                limit=hq.limit,
                query=q.Query.Nearest(_vector(q, b.vector), using=b.name),
                filter=flt,
                params=params,
                with_payload=True,
                with_vector=with_vector,
            )
        prefetches = [
            q.Prefetch(
                limit=b.limit,
                query=q.Query.Nearest(_vector(q, b.vector), using=b.name),
                filter=flt,
                params=params,
            )
            for b in hq.branches
        ]
        if hq.fusion == "rrf":
            weights = [b.weight for b in hq.branches]
            fusion = q.Fusion.Rrf(
                k=hq.rrf_k, weights=None if all(w == 1.0 for w in weights) else weights
            )
        else:
            fusion = q.Fusion.Dbsf()
        return q.QueryRequest(
            limit=hq.limit,
            prefetches=prefetches,
            query=fusion,
            with_payload=True,
            with_vector=with_vector,
        )

    def query(self, name: str, queries: Sequence[HybridQuery]) -> list[list[ScoredRecord]]:
        q = _edge()
        shard = self._shard(name)
        batch = q.QueryBatchRequest([self._request(hq) for hq in queries])
        results = shard.query_batch(batch)
        return [
            [
                to_record(p)
                for p in points
            ]
            for points in results
        ]

    def retrieve(self, name: str, ids: Sequence[str]) -> list[ScoredRecord]:
        if not ids:
            return []
        records = self._shard(name).retrieve(list(ids), with_payload=True, with_vector=False)
        return [to_record(r) for r in records]

    def scroll(
        self, name: str, flt: Filter | None = None, *, with_vectors: bool = False, batch: int = 256
    ) -> Iterator[ScoredRecord]:
        q = _edge()
        shard = self._shard(name)
        offset = None
        edge_filter = to_edge_filter(flt)
        while True:
            records, offset = shard.scroll(
                q.ScrollRequest(
                    offset=offset,
                    limit=batch,
                    filter=edge_filter,
                    with_payload=True,
                    with_vector=with_vectors,
                )
            )
            for r in records:
                yield to_record(r)
            if offset is None:
                return

    def count(self, name: str, flt: Filter | None = None) -> int:
        q = _edge()
        return int(self._shard(name).count(q.CountRequest(filter=to_edge_filter(flt), exact=True)))

    def info(self, name: str) -> dict[str, Any]:
        shard = self._shard(name)
        si = shard.info()
        # Allocated blocks, not apparent sizes: Edge preallocates sparse WAL and mmap files.
        disk = sum(f.stat().st_blocks * 512 for f in (self.path / name).rglob("*") if f.is_file())
        meta = json.loads(self._meta_path(name).read_text())
        return {
            "backend": "qdrant-edge",
            "location": str(self.path),
            "collection": name,
            "points": int(si.points_count),
            "indexed_vectors": int(si.indexed_vectors_count),
            "segments": int(si.segments_count),
            "payload_indexes": sorted(si.payload_schema),
            "disk_bytes": disk,
            "fingerprint": meta["fingerprint"],
        }

    def drop_collection(self, name: str) -> None:
        """Delete a collection and its files."""
        with self._mutex:
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            self._meta_path(name).unlink(missing_ok=True)
            shutil.rmtree(self.path / name, ignore_errors=True)

    def close(self) -> None:
        with self._mutex:
            for shard in self._shards.values():
                try:
                    shard.flush()
                    shard.close()
                except Exception:  # pragma: no cover - best effort on shutdown
                    logger.exception("closing an Edge shard failed")
            self._shards.clear()
            self._lock.release()
