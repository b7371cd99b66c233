"""Qdrant Edge: the embedded default (Qdrant's engine in-process, on local disk).

The shared :class:`~m3retriever.store.qdrant.QdrantStore` does the translation (through
:class:`EdgeKit`); this module keeps what is Edge's own: the directory lock (from
:mod:`m3retriever.store.directory`), the metadata file, loading shards, flush and optimize.

Layout of a store directory::

    <path>/.m3retriever.lock        our inter-process lock (Edge takes none without its WAL
                                    and only a WAL lock with it; we want a clear error)
    <path>/<collection>/            the Edge shard (segments, WAL, edge_config.json)
    <path>/<collection>.m3r.json    our metadata: the encoder fingerprint, the spec and the
                                    document length totals of BM25 branches, the search
                                    defaults saved with the collection
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from m3retriever.errors import CollectionNotFoundError, StoreError, StoreInUseError
from m3retriever.store import replace as _replace
from m3retriever.store.collection_names import path_in
from m3retriever.store.directory import DirLock as _DirLock
from m3retriever.store.directory import file_in_the_way, in_use_message, remove_stale_builds, store_dir
from m3retriever.store.index_settings import from_engine_config
from m3retriever.store.qdrant import QdrantStore
from m3retriever.store.schema import CollectionSpec, Quantization
from m3retriever.store.translate import CollectionModels, IndexKind, index_kind
from m3retriever.store.warm import read_into_cache
from m3retriever.types import Distance

__all__ = ["EdgeStore", "EdgeKit", "LOCK_FILE"]

LOCK_FILE = ".m3retriever.lock"

logger = logging.getLogger(__name__)

_DISTANCES = {"cosine": "Cosine", "dot": "Dot", "euclid": "Euclid", "manhattan": "Manhattan"}


def _edge() -> Any:
    import qdrant_edge

    return qdrant_edge


def _is_lock_error(exc: Exception) -> bool:
    """Whether an engine error says the shard's WAL is locked by someone else."""
    text = str(exc).lower()
    return "wal" in text and any(w in text for w in ("wouldblock", "lock", "temporarily unavailable"))


class EdgeKit:
    """``qdrant_edge`` constructors for :class:`~m3retriever.store.translate.Translator`."""

    def __init__(self) -> None:
        self.q = _edge()
        self.sparse_type = self.q.SparseVector

    # -- filters ---------------------------------------------------------------------
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

    # -- collection ------------------------------------------------------------------
    def vector_params(self, size: int, distance: Distance, on_disk: bool) -> Any:
        dist = getattr(self.q.Distance, _DISTANCES[distance])
        return self.q.EdgeVectorParams(size=size, distance=dist, on_disk=on_disk or None)

    def sparse_params(self, idf: bool, on_disk: bool) -> Any:
        return self.q.EdgeSparseVectorParams(modifier=self.q.Modifier.Idf if idf else None, on_disk=on_disk or None)

    def quantization(self, kind: Quantization) -> Any:
        q = self.q
        if kind == "scalar":
            return q.ScalarQuantizationConfig(q.ScalarType.Int8, always_ram=True)
        if kind == "binary":
            return q.BinaryQuantizationConfig(always_ram=True)
        return q.TurboQuantQuantizationConfig(always_ram=True, bits=q.TurboQuantBitSize.Bits4)

    def multivector_params(self, size: int) -> Any:
        q = self.q
        return q.EdgeVectorParams(
            size=size,
            distance=q.Distance.Dot,
            multivector_config=q.MultiVectorConfig(q.MultiVectorComparator.MaxSim),
            hnsw_config=q.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000),
            quantization_config=q.ScalarQuantizationConfig(q.ScalarType.Int8, memory=q.Memory.Pinned),
            memory=q.Memory.Cold,
        )

    def hnsw_config(self, m: int, ef_construct: int, full_scan_threshold: int) -> Any:
        return self.q.HnswIndexConfig(m=m, ef_construct=ef_construct, full_scan_threshold=full_scan_threshold)

    def index_type(self, kind: IndexKind) -> Any:
        if kind == "tenant":
            return self.q.KeywordIndexParams(is_tenant=True)
        return self.q.PayloadSchemaType.Keyword if kind == "keyword" else self.q.PayloadSchemaType.Integer

    # -- points and requests ---------------------------------------------------------
    def sparse_vector(self, indices: list[int], values: list[float]) -> Any:
        return self.q.SparseVector(indices, values)

    def point(self, id: str, vectors: dict[str, Any], payload: dict[str, Any]) -> Any:
        return self.q.Point(id, vectors, payload)

    def search_params(self, hnsw_ef: int | None, exact: bool, quantization: Any, idf_corpus: Any = None) -> Any:
        idf = self.q.IdfParams(corpus=idf_corpus) if idf_corpus is not None else None
        return self.q.SearchParams(hnsw_ef=hnsw_ef, exact=exact, quantization=quantization, idf=idf)

    def quantization_search(self, rescore: bool | None, oversampling: float | None) -> Any:
        return self.q.QuantizationSearchParams(rescore=rescore, oversampling=oversampling)

    def prefetch(self, vector: Any, using: str, limit: int, flt: Any, params: Any) -> Any:
        return self.q.Prefetch(limit=limit, query=self.q.Query.Nearest(vector, using=using), filter=flt, params=params)

    def nearest_request(self, vector: Any, using: str, limit: int, flt: Any, params: Any, with_vector: Any) -> Any:
        return self.q.QueryRequest(
            limit=limit,
            query=self.q.Query.Nearest(vector, using=using),
            filter=flt,
            params=params,
            with_payload=True,
            with_vector=with_vector,
        )

    def fused_request(self, prefetches: list[Any], fusion: Any, limit: int, with_vector: Any) -> Any:
        return self.q.QueryRequest(
            limit=limit, prefetches=prefetches, query=fusion, with_payload=True, with_vector=with_vector
        )

    def fused_prefetch(self, prefetches: list[Any], fusion: Any, limit: int) -> Any:
        return self.q.Prefetch(limit=limit, prefetches=prefetches, query=fusion)

    def rescore_request(
        self, prefetch: Any, vector: list[list[float]], using: str, limit: int, with_vector: Any
    ) -> Any:
        q = self.q
        return q.QueryRequest(
            limit=limit,
            prefetches=[prefetch],
            query=q.Query.Nearest(vector, using=using),
            params=q.SearchParams(quantization=q.QuantizationSearchParams(rescore=True)),
            with_payload=True,
            with_vector=with_vector,
        )

    def rrf(self, k: int, weights: list[float] | None) -> Any:
        return self.q.Fusion.Rrf(k=k, weights=weights)

    def dbsf(self) -> Any:
        return self.q.Fusion.Dbsf()


class EdgeStore(QdrantStore):
    """Collections as Qdrant Edge shards under one directory.

    Args:
        path: Directory holding the collections (created if missing).
        create: Create the directory and its lock file if missing. With ``False`` (read
            commands), a directory that is not a store raises :class:`CollectionNotFoundError`
            for ``collection`` and nothing is created.
        collection: The collection the caller means to use (named in that error).

    Opening finishes a replace of a collection that was interrupted after it was decided and
    deletes the unfinished builds (:mod:`m3retriever.store.replace`), under the store's lock.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, collection: str = "") -> None:
        if not create:
            where = Path(path).expanduser().resolve()
            blocked = file_in_the_way(where)
            if blocked is not None:
                raise blocked
            if not (where / LOCK_FILE).exists():
                raise CollectionNotFoundError(collection, where)
        self.path = store_dir(path)
        kit = EdgeKit()
        super().__init__(kit, str(self.path))
        self.q = kit.q
        self._lock = _DirLock(self.path / LOCK_FILE)
        self._shards: dict[str, Any] = {}
        try:
            _replace.recover(self.path)
        except OSError as exc:
            self._lock.release()
            raise StoreError(
                f"cannot finish an interrupted replace in {self.path} ({exc}); free disk space or fix the "
                "permissions, then open the store again (nothing is deleted before it is replaced)"
            ) from exc

    # -- collection management -------------------------------------------------------
    def _meta_path(self, name: str) -> Path:
        return path_in(self.path, name, _replace.META_SUFFIX)

    def _dir(self, name: str) -> Path:
        return path_in(self.path, name)

    def collection_fingerprint(self, name: str) -> Mapping[str, Any] | None:
        meta = self._meta_path(name)
        if not meta.exists():
            return None
        fingerprint: Mapping[str, Any] = json.loads(meta.read_text())["fingerprint"]
        return fingerprint

    def _open(self, name: str) -> None:
        self._shard(name)

    def _create(self, spec: CollectionSpec, models: CollectionModels) -> None:
        q = self.q
        shard_dir = self._dir(spec.name)
        if shard_dir.exists():  # a half-created collection from a crash: start over
            shutil.rmtree(shard_dir)
        config = q.EdgeConfig(
            vectors=models.vectors or None,
            sparse_vectors=models.sparse or None,
            hnsw_config=models.hnsw,
            quantization_config=models.quantization,
            # Explicit either way: left unset, Edge keeps payloads on disk (and says so once reopened).
            on_disk_payload=bool(models.payload_on_disk),
            wal_enabled=True,
        )
        shard = q.EdgeShard.create(str(shard_dir), config)
        for field, schema in models.indexes:
            shard.update(q.UpdateOperation.create_field_index(field, schema))
        shard.flush()
        self._shards[spec.name] = shard
        # The metadata file is written last: its presence marks a complete collection.
        self._write_meta(spec.name, {"fingerprint": dict(spec.fingerprint), "spec": asdict(spec)})

    def _write_meta(self, name: str, meta: Mapping[str, Any]) -> None:
        """Replace the metadata file atomically (write a temporary file, then rename it)."""
        tmp = self._meta_path(name).with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2, default=list))
        os.replace(tmp, self._meta_path(name))

    def index_settings(self, name: str) -> dict[str, Any]:
        """Read from the engine's own record of the collection (``edge_config.json``)."""
        config = self._dir(name) / "edge_config.json"
        if not config.exists():
            raise CollectionNotFoundError(name, self.path)
        return from_engine_config(json.loads(config.read_text()))

    def metadata(self, name: str) -> dict[str, Any]:
        meta = self._meta_path(name)
        return dict(json.loads(meta.read_text())) if meta.exists() else {}

    def set_metadata(self, name: str, values: Mapping[str, Any]) -> None:
        with self.mutex:
            meta = {**json.loads(self._meta_path(name).read_text()), **values}
            self._write_meta(name, {k: v for k, v in meta.items() if v is not None})

    @contextmanager
    def quiesced(self, name: str) -> Iterator[tuple[Path, Path]]:
        """Hold this store's writes, flush and close the collection's shard (it opens again on
        next use), and give its folder and metadata file: a snapshot reads them meanwhile, a
        restore replaces them (metadata file last)."""
        with self.mutex:
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.flush()
                shard.close()
            yield self._dir(name), self._meta_path(name)

    def _shard(self, name: str) -> Any:
        # Lock-free once open: reads must not wait behind a write or an optimize holding the
        # mutex (the engine itself lets queries run during updates).
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        with self.mutex:
            if name not in self._shards:
                if self.collection_fingerprint(name) is None:
                    raise CollectionNotFoundError(name, self.path)
                remove_stale_builds(self._dir(name))
                try:
                    self._shards[name] = self.q.EdgeShard.load(str(self._dir(name)))
                except Exception as exc:
                    if _is_lock_error(exc):
                        raise StoreInUseError(
                            in_use_message(
                                self.path,
                                f"collection {name!r} is open elsewhere; was .m3retriever.lock "
                                "deleted while the store was in use?",
                            )
                        ) from exc
                    raise StoreError(f"cannot open collection {name!r} at {self.path}: {exc}") from exc
            return self._shards[name]

    # -- primitives ------------------------------------------------------------------
    def _update(self, name: str, operation: Any) -> None:
        with self.mutex:
            self._shard(name).update(operation)

    def _upsert(self, name: str, points: list[Any]) -> None:
        self._update(name, self.q.UpdateOperation.upsert_points(points))

    def _delete_ids(self, name: str, ids: list[str]) -> None:
        self._update(name, self.q.UpdateOperation.delete_points(ids))

    def _delete_filter(self, name: str, flt: Any) -> None:
        self._update(name, self.q.UpdateOperation.delete_points_by_filter(flt))

    def _query_batch(self, name: str, requests: list[Any]) -> list[Sequence[Any]]:
        return list(self._shard(name).query_batch(self.q.QueryBatchRequest(requests)))

    def _retrieve(self, name: str, ids: list[str]) -> Sequence[Any]:
        return list(self._shard(name).retrieve(ids, with_payload=True, with_vector=False))

    def _scroll_page(
        self, name: str, flt: Any, offset: Any, limit: int, with_vectors: bool, fields: list[str] | None = None
    ) -> tuple[Sequence[Any], Any]:
        request = self.q.ScrollRequest(
            offset=offset, limit=limit, filter=flt, with_payload=fields or True, with_vector=with_vectors
        )
        records, next_offset = self._shard(name).scroll(request)
        return records, next_offset

    def _count(self, name: str, flt: Any) -> int:
        return int(self._shard(name).count(self.q.CountRequest(filter=flt, exact=True)))

    def _index_kinds(self, name: str) -> dict[str, str] | None:
        schema = self._shard(name).info().payload_schema
        return {key: index_kind(info.data_type, info.params) for key, info in schema.items()}

    def _create_index(self, name: str, key: str, schema: Any) -> None:
        with self.mutex:
            shard = self._shard(name)
            shard.update(self.q.UpdateOperation.create_field_index(key, schema))
            shard.flush()

    # -- Edge specifics ----------------------------------------------------------------
    def flush(self, name: str) -> None:
        with self.mutex:
            self._shard(name).flush()

    def optimize(self, name: str) -> None:
        with self.mutex:
            self._shard(name).optimize()

    def warm_up(self, name: str, *, payloads: bool = False) -> int:
        """Read the collection's vector storages and indexes (and payloads) into the page cache,
        without the mutex (as reads run): files the optimizer removes meanwhile are skipped."""
        self._shard(name)  # opens it, or says that it does not exist
        return read_into_cache(self._dir(name), name, payloads)

    def info(self, name: str) -> dict[str, Any]:
        shard = self._shard(name)
        si = shard.info()
        # Allocated blocks, not apparent sizes: Edge preallocates sparse WAL and mmap files.
        disk = sum(f.stat().st_blocks * 512 for f in self._dir(name).rglob("*") if f.is_file())
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
            "index": self.index_settings(name),
        }

    def drop_collection(self, name: str) -> None:
        """Delete a collection and its files."""
        with self.mutex:
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            self._meta_path(name).unlink(missing_ok=True)
            shutil.rmtree(self._dir(name), ignore_errors=True)

    # -- replacing a collection (restore, add-branch): build aside, verify, swap ----------
    def build_folder(self, name: str) -> Path:
        """An empty folder for a new version of ``name``: fill its ``shard/`` and
        ``meta.json``, check them with :meth:`open_build`, then :meth:`commit_build`."""
        with self.mutex:
            return _replace.staging_dir(self.path, name)

    def open_build(self, name: str) -> int:
        """Load the new version of ``name`` from its build folder (the engine checks its
        files) and count its points; nothing live changes.

        Raises:
            StoreError: if the engine cannot load it.
        """
        folder = path_in(self.path, _replace.STAGING_PREFIX + name) / _replace.SHARD
        try:
            shard = self.q.EdgeShard.load(str(folder))
        except Exception as exc:
            raise StoreError(f"the new version of collection {name!r} does not open: {exc}") from exc
        try:
            return int(shard.count(self.q.CountRequest(filter=None, exact=True)))
        finally:
            shard.close()

    def commit_build(self, name: str) -> None:
        """Swap the verified new version of ``name`` in (see :mod:`m3retriever.store.replace`)."""
        with self.quiesced(name):
            _replace.commit(self.path, name)

    def replace_collection(self, name: str, source: str, *, batch: int = 256) -> int:
        """Make ``name`` what collection ``source`` is (its points, vectors and metadata,
        renamed), atomically: ``source`` moves into a build folder, is verified, then swapped
        in. The points of ``name`` afterwards.

        Raises:
            StoreError: if the moved version does not open with the points ``source`` held
                (``name`` is then left as it was).
        """
        expected = self.count(source)
        with self.mutex:
            for each in (name, source):
                shard = self._shards.pop(each, None)
                if shard is not None:
                    shard.flush()
                    shard.close()
            folder = _replace.staging_dir(self.path, name)
            meta = json.loads(self._meta_path(source).read_text())
            if isinstance(meta.get("spec"), dict):
                meta["spec"]["name"] = name
            (folder / _replace.META).write_text(json.dumps(meta, indent=2, default=list))
            self._meta_path(source).unlink()  # first: a shard folder without it is a half-created collection
            os.replace(self._dir(source), folder / _replace.SHARD)
        points = self.open_build(name)
        if points != expected:
            raise StoreError(
                f"the new version of collection {name!r} holds {points} points instead of {expected}; "
                f"{name!r} is unchanged: run the command again"
            )
        self.commit_build(name)
        return points

    def close(self) -> None:
        with self.mutex:
            for shard in self._shards.values():
                try:
                    shard.flush()
                    shard.close()
                except Exception:  # pragma: no cover - best effort on shutdown
                    logger.exception("closing an Edge shard failed")
            self._shards.clear()
            self._lock.release()
