"""qdrant-client translator: a Qdrant server or cluster by URL (or any ``QdrantClient``)."""

from __future__ import annotations

import logging
import warnings
from typing import Any, Iterator, Mapping, Sequence

from m3retriever.errors import StoreError
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

__all__ = ["QdrantClientStore"]

logger = logging.getLogger(__name__)

_FINGERPRINT_KEY = "m3retriever_fingerprint"


def _models() -> Any:
    from qdrant_client import models

    return models


class _ClientFilters:
    """qdrant-client constructors for :func:`m3retriever.filters.translate`."""

    def __init__(self) -> None:
        self.m = _models()

    def eq(self, key: str, value: Any) -> Any:
        return self.m.FieldCondition(key=key, match=self.m.MatchValue(value=value))

    def any_of(self, key: str, values: list[Any]) -> Any:
        return self.m.FieldCondition(key=key, match=self.m.MatchAny(any=values))

    def range(self, key: str, gte: Any, gt: Any, lte: Any, lt: Any) -> Any:
        return self.m.FieldCondition(key=key, range=self.m.Range(gte=gte, gt=gt, lte=lte, lt=lt))

    def must(self, conditions: list[Any]) -> Any:
        return self.m.Filter(must=conditions)

    def must_not(self, conditions: list[Any]) -> Any:
        return self.m.Filter(must_not=conditions)


def to_client_filter(flt: Filter | None) -> Any:
    """Translate a neutral filter into a ``qdrant_client.models.Filter``."""
    return translate(flt, _ClientFilters())


def _vector(v: Sequence[float] | SparseVector) -> Any:
    if isinstance(v, SparseVector):
        return _models().SparseVector(indices=list(v.indices), values=list(v.values))
    return [float(x) for x in v]



class QdrantClientStore(Store):
    """Collections in a Qdrant server, cluster, or qdrant-client's local mode.

    Args:
        client: A ``qdrant_client.QdrantClient``.
        shard_number: Shards per new collection (cluster deployments).
        replication_factor: Replicas per shard (cluster deployments).
        owns_client: Close the client in :meth:`close`.
    """

    def __init__(
        self,
        client: Any,
        *,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        owns_client: bool = False,
    ) -> None:
        self.client = client
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self._owns_client = owns_client

    def collection_fingerprint(self, name: str) -> Mapping[str, Any] | None:
        if not self.client.collection_exists(name):
            return None
        metadata = self.client.get_collection(name).config.metadata or {}
        return metadata.get(_FINGERPRINT_KEY, {})

    def has_collection(self, name: str) -> bool:
        return bool(self.client.collection_exists(name))

    def ensure_collection(self, spec: CollectionSpec) -> None:
        existing = self.collection_fingerprint(spec.name)
        if existing is not None:
            check_fingerprint(spec.name, "the Qdrant server", existing, spec.fingerprint)
            return
        m = _models()
        vectors = {}
        if spec.dense_dim is not None:
            vectors[DENSE] = m.VectorParams(
                size=spec.dense_dim, distance=m.Distance[spec.distance.upper()]
            )
        sparse = {}
        if spec.sparse:
            sparse[SPARSE] = m.SparseVectorParams(
                modifier=m.Modifier.IDF if spec.sparse_idf else None
            )
        if spec.bm25:
            sparse[BM25] = m.SparseVectorParams(modifier=m.Modifier.IDF)
        self.client.create_collection(
            spec.name,
            vectors_config=vectors,
            sparse_vectors_config=sparse or None,
            shard_number=self.shard_number,
            replication_factor=self.replication_factor,
            hnsw_config=m.HnswConfigDiff(
                m=spec.hnsw_m,
                ef_construct=spec.hnsw_ef_construct,
                full_scan_threshold=spec.full_scan_threshold_kb,
            ),
            metadata={_FINGERPRINT_KEY: dict(spec.fingerprint)},
        )
        with warnings.catch_warnings():
            # qdrant-client's local mode warns that it ignores payload indexes; servers use them.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for field in INDEXED_FIELDS + tuple(payload_key(f) for f in spec.indexed_fields):
                self.client.create_payload_index(spec.name, field, m.PayloadSchemaType.KEYWORD)
            self.client.create_payload_index(spec.name, "chunk_index", m.PayloadSchemaType.INTEGER)

    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        m = _models()
        structs = []
        for p in points:
            vec: dict[str, Any] = {}
            if p.dense is not None:
                vec[DENSE] = [float(x) for x in p.dense]
            if p.sparse is not None:
                vec[SPARSE] = _vector(p.sparse)
            if p.bm25 is not None:
                vec[BM25] = _vector(p.bm25)
            structs.append(m.PointStruct(id=p.id, vector=vec, payload=dict(p.payload)))
        self.client.upsert(name, points=structs, wait=True)

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            m = _models()
            self.client.delete(name, points_selector=m.PointIdsList(points=list(ids)), wait=True)

    def delete_by_filter(self, name: str, flt: Filter) -> None:
        m = _models()
        self.client.delete(
            name, points_selector=m.FilterSelector(filter=to_client_filter(flt)), wait=True
        )

    def flush(self, name: str) -> None:
        """Writes are acknowledged with ``wait=True``; nothing to flush."""

    def optimize(self, name: str) -> None:
        """The server builds its indexes itself."""

    def _request(self, hq: HybridQuery) -> Any:
        m = _models()
        flt = to_client_filter(hq.filter)
        params = m.SearchParams(hnsw_ef=hq.hnsw_ef, exact=hq.exact)
        with_vector = list(hq.with_vectors) if hq.with_vectors else False
        if len(hq.branches) == 1:
            b = hq.branches[0]
            return m.QueryRequest(
                query=_vector(b.vector),
                using=b.name,
                limit=hq.limit,
                filter=flt,
                params=params,
                with_payload=True,
                with_vector=with_vector,
            )
        prefetch = [
            m.Prefetch(query=_vector(b.vector), using=b.name, limit=b.limit, filter=flt, params=params)
            for b in hq.branches
        ]
        if hq.fusion == "rrf":
            weights = [b.weight for b in hq.branches]
            query = m.RrfQuery(
                rrf=m.Rrf(k=hq.rrf_k, weights=None if all(w == 1.0 for w in weights) else weights)
            )
        else:
            query = m.FusionQuery(fusion=m.Fusion.DBSF)
        return m.QueryRequest(
            prefetch=prefetch, query=query, limit=hq.limit, with_payload=True, with_vector=with_vector
        )

    def query(self, name: str, queries: Sequence[HybridQuery]) -> list[list[ScoredRecord]]:
        responses = self.client.query_batch_points(name, [self._request(hq) for hq in queries])
        return [
            [
                to_record(p)
                for p in r.points
            ]
            for r in responses
        ]

    def retrieve(self, name: str, ids: Sequence[str]) -> list[ScoredRecord]:
        if not ids:
            return []
        records = self.client.retrieve(name, list(ids), with_payload=True, with_vectors=False)
        return [to_record(r) for r in records]

    def scroll(
        self, name: str, flt: Filter | None = None, *, with_vectors: bool = False, batch: int = 256
    ) -> Iterator[ScoredRecord]:
        offset = None
        cflt = to_client_filter(flt)
        while True:
            records, offset = self.client.scroll(
                name,
                scroll_filter=cflt,
                limit=batch,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            )
            for r in records:
                yield to_record(r)
            if offset is None:
                return

    def count(self, name: str, flt: Filter | None = None) -> int:
        return int(self.client.count(name, count_filter=to_client_filter(flt), exact=True).count)

    def info(self, name: str) -> dict[str, Any]:
        if not self.client.collection_exists(name):
            raise StoreError(f"collection {name!r} does not exist; ingest documents first")
        ci = self.client.get_collection(name)
        return {
            "backend": "qdrant-client",
            "collection": name,
            "points": int(ci.points_count or 0),
            "indexed_vectors": int(ci.indexed_vectors_count or 0),
            "segments": int(ci.segments_count or 0),
            "payload_indexes": sorted(ci.payload_schema or {}),
            "status": str(ci.status),
            "fingerprint": (ci.config.metadata or {}).get(_FINGERPRINT_KEY),
        }

    def drop_collection(self, name: str) -> None:
        """Delete a collection."""
        if self.client.collection_exists(name):
            self.client.delete_collection(name)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
