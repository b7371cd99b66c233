"""qdrant-client: a Qdrant server or cluster by URL (or any ``QdrantClient``).

The shared :class:`~m3retriever.store.qdrant.QdrantStore` does the translation (through
:class:`ClientKit`); this module keeps what is the client's own: the connection, sharding and
replication of new collections, and the fingerprint in the collection's metadata.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

from m3retriever.errors import CollectionNotFoundError
from m3retriever.store.index_settings import LEGACY_INDEX_SETTINGS, index_settings_of
from m3retriever.store.qdrant import QdrantStore
from m3retriever.store.schema import REPLACES_KEY, CollectionSpec, Quantization
from m3retriever.store.translate import CollectionModels, IndexKind, index_kind
from m3retriever.types import Distance

__all__ = ["QdrantClientStore", "ClientKit", "client_location"]

logger = logging.getLogger(__name__)

_FINGERPRINT_KEY = "m3retriever_fingerprint"
_INDEX_KEY = "m3retriever_index"
_PREFIX = "m3retriever_"  # every key of ours in a collection's metadata


def client_location(client: Any) -> str:
    """What ``client`` reaches, as messages name it: ``the local Qdrant store at PATH`` and
    ``qdrant-client's in-memory store`` (its local mode, no server), else ``the Qdrant server
    at URL`` (without any user name or password in the URL)."""
    options = getattr(client, "init_options", None)
    options = options if isinstance(options, Mapping) else {}
    if options.get("path") is not None:
        return f"the local Qdrant store at {options['path']}"
    if options.get("location") == ":memory:":
        return "qdrant-client's in-memory store (:memory:)"
    address = options.get("url") or options.get("location")
    if isinstance(address, str) and address:
        parts = urlsplit(address)
        if "@" in parts.netloc:
            address = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
        return f"the Qdrant server at {address}"
    if isinstance(options.get("host"), str):
        return f"the Qdrant server at {options['host']}:{options.get('port')}"
    return "the Qdrant server"


def _models() -> Any:
    from qdrant_client import models

    return models


class ClientKit:
    """``qdrant_client.models`` constructors for :class:`~m3retriever.store.translate.Translator`."""

    def __init__(self) -> None:
        self.m = _models()
        self.sparse_type = self.m.SparseVector

    # -- filters ---------------------------------------------------------------------
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

    # -- collection ------------------------------------------------------------------
    def vector_params(self, size: int, distance: Distance, on_disk: bool) -> Any:
        return self.m.VectorParams(size=size, distance=self.m.Distance[distance.upper()], on_disk=on_disk or None)

    def sparse_params(self, idf: bool, on_disk: bool) -> Any:
        index = self.m.SparseIndexParams(on_disk=True) if on_disk else None
        return self.m.SparseVectorParams(index=index, modifier=self.m.Modifier.IDF if idf else None)

    def quantization(self, kind: Quantization) -> Any:
        m = self.m
        if kind == "scalar":
            return m.ScalarQuantization(scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, always_ram=True))
        if kind == "binary":
            return m.BinaryQuantization(binary=m.BinaryQuantizationConfig(always_ram=True))
        return m.TurboQuantization(turbo=m.TurboQuantQuantizationConfig(always_ram=True, bits=m.TurboQuantBitSize.BITS4))

    def multivector_params(self, size: int) -> Any:
        m = self.m
        return m.VectorParams(
            size=size,
            distance=m.Distance.DOT,
            multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM),
            hnsw_config=m.HnswConfigDiff(m=0),
            quantization_config=m.ScalarQuantization(
                scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, always_ram=True)
            ),
            on_disk=True,
        )

    def hnsw_config(self, m: int, ef_construct: int, full_scan_threshold: int) -> Any:
        return self.m.HnswConfigDiff(m=m, ef_construct=ef_construct, full_scan_threshold=full_scan_threshold)

    def index_type(self, kind: IndexKind) -> Any:
        if kind == "tenant":
            return self.m.KeywordIndexParams(type=self.m.KeywordIndexType.KEYWORD, is_tenant=True)
        return self.m.PayloadSchemaType.KEYWORD if kind == "keyword" else self.m.PayloadSchemaType.INTEGER

    # -- points and requests ---------------------------------------------------------
    def sparse_vector(self, indices: list[int], values: list[float]) -> Any:
        return self.m.SparseVector(indices=indices, values=values)

    def point(self, id: str, vectors: dict[str, Any], payload: dict[str, Any]) -> Any:
        return self.m.PointStruct(id=id, vector=vectors, payload=payload)

    def search_params(self, hnsw_ef: int | None, exact: bool, quantization: Any, idf_corpus: Any = None) -> Any:
        idf = self.m.IdfCorpusParams(corpus=idf_corpus) if idf_corpus is not None else None
        return self.m.SearchParams(hnsw_ef=hnsw_ef, exact=exact, quantization=quantization, idf=idf)

    def quantization_search(self, rescore: bool | None, oversampling: float | None) -> Any:
        return self.m.QuantizationSearchParams(rescore=rescore, oversampling=oversampling)

    def prefetch(self, vector: Any, using: str, limit: int, flt: Any, params: Any) -> Any:
        return self.m.Prefetch(query=vector, using=using, limit=limit, filter=flt, params=params)

    def nearest_request(self, vector: Any, using: str, limit: int, flt: Any, params: Any, with_vector: Any) -> Any:
        return self.m.QueryRequest(
            query=vector,
            using=using,
            limit=limit,
            filter=flt,
            params=params,
            with_payload=True,
            with_vector=with_vector,
        )

    def fused_request(self, prefetches: list[Any], fusion: Any, limit: int, with_vector: Any) -> Any:
        return self.m.QueryRequest(
            prefetch=prefetches, query=fusion, limit=limit, with_payload=True, with_vector=with_vector
        )

    def fused_prefetch(self, prefetches: list[Any], fusion: Any, limit: int) -> Any:
        return self.m.Prefetch(prefetch=prefetches, query=fusion, limit=limit)

    def rescore_request(
        self, prefetch: Any, vector: list[list[float]], using: str, limit: int, with_vector: Any
    ) -> Any:
        m = self.m
        return m.QueryRequest(
            prefetch=[prefetch],
            query=vector,
            using=using,
            limit=limit,
            params=m.SearchParams(quantization=m.QuantizationSearchParams(rescore=True)),
            with_payload=True,
            with_vector=with_vector,
        )

    def rrf(self, k: int, weights: list[float] | None) -> Any:
        return self.m.RrfQuery(rrf=self.m.Rrf(k=k, weights=weights))

    def dbsf(self) -> Any:
        return self.m.FusionQuery(fusion=self.m.Fusion.DBSF)


class QdrantClientStore(QdrantStore):
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
        super().__init__(ClientKit(), client_location(client))
        self.client = client
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self._owns_client = owns_client

    def collection_fingerprint(self, name: str) -> Mapping[str, Any] | None:
        if not self.client.collection_exists(name):
            return None
        metadata = self.client.get_collection(name).config.metadata or {}
        fingerprint: Mapping[str, Any] = metadata.get(_FINGERPRINT_KEY, {})
        return fingerprint

    def has_collection(self, name: str) -> bool:
        return bool(self.client.collection_exists(name))

    def index_settings(self, name: str) -> dict[str, Any]:
        """Read from the record kept in the collection metadata at creation (qdrant-client's
        local mode keeps no quantization or HNSW config of its own)."""
        if not self.client.collection_exists(name):
            raise CollectionNotFoundError(name, self.where)
        recorded = (self.client.get_collection(name).config.metadata or {}).get(_INDEX_KEY) or {}
        return {**LEGACY_INDEX_SETTINGS, **recorded}

    def finish_replace(self, name: str) -> bool:
        """A complete copy named ``<name>.<suffix>`` and marked as replacing ``name`` is the
        trace of a replace cut short: finish it (one listing of the collections)."""
        found = False
        for other in sorted(c.name for c in self.client.get_collections().collections):
            if other.startswith(name + ".") and self.metadata(other).get(REPLACES_KEY) == name:
                logger.warning("finishing the interrupted replace of collection %r from %r", name, other)
                self.replace_collection(name, other)
                found = True
        return found

    def metadata(self, name: str) -> dict[str, Any]:
        if not self.client.collection_exists(name):
            return {}
        metadata = self.client.get_collection(name).config.metadata or {}
        return {k[len(_PREFIX) :]: v for k, v in metadata.items() if k.startswith(_PREFIX)}

    def set_metadata(self, name: str, values: Mapping[str, Any]) -> None:
        # A None value removes the key: the server drops metadata keys set to null.
        with self.mutex:
            self.client.update_collection(name, metadata={_PREFIX + k: v for k, v in values.items()})

    def stored_spec(self, name: str) -> CollectionSpec | None:
        """The stored description, or for a collection created before it was kept, one read
        back from the collection's vector configuration."""
        if self.has_collection(name) and "spec" not in self.metadata(name):
            return self._spec_from_config(name)
        return super().stored_spec(name)

    def _spec_from_config(self, name: str) -> CollectionSpec:
        m = _models()
        ci = self.client.get_collection(name)
        dense = (ci.config.params.vectors or {}).get("dense") if isinstance(ci.config.params.vectors, dict) else None
        sparse = ci.config.params.sparse_vectors or {}
        keys = sorted(ci.payload_schema or {})
        return CollectionSpec(
            name=name,
            dense_dim=dense.size if dense is not None else None,
            distance=str(dense.distance.value).lower() if dense is not None else "cosine",  # type: ignore[arg-type]
            sparse="sparse" in sparse,
            sparse_idf="sparse" in sparse and sparse["sparse"].modifier == m.Modifier.IDF,
            bm25="bm25" in sparse,
            fingerprint=self.collection_fingerprint(name) or {},
            indexed_fields=tuple(k[len("metadata.") :] for k in keys if k.startswith("metadata.")),
        )

    def _open(self, name: str) -> None:
        """Nothing to open: the server holds the collection."""

    def _create(self, spec: CollectionSpec, models: CollectionModels) -> None:
        self.client.create_collection(
            spec.name,
            vectors_config=models.vectors,
            sparse_vectors_config=models.sparse or None,
            shard_number=self.shard_number,
            replication_factor=self.replication_factor,
            hnsw_config=models.hnsw,
            quantization_config=models.quantization,
            on_disk_payload=bool(models.payload_on_disk),  # explicit: a server otherwise applies its own default (on disk)
            metadata={
                _FINGERPRINT_KEY: dict(spec.fingerprint),
                _INDEX_KEY: index_settings_of(spec),
                _PREFIX + "spec": asdict(spec),
            },
        )
        with warnings.catch_warnings():
            # qdrant-client's local mode warns that it ignores payload indexes; servers use them.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for field, schema in models.indexes:
                self.client.create_payload_index(spec.name, field, schema)

    # -- primitives ------------------------------------------------------------------
    def _upsert(self, name: str, points: list[Any]) -> None:
        self.client.upsert(name, points=points, wait=True)

    def _delete_ids(self, name: str, ids: list[str]) -> None:
        self.client.delete(name, points_selector=_models().PointIdsList(points=ids), wait=True)

    def _delete_filter(self, name: str, flt: Any) -> None:
        self.client.delete(name, points_selector=_models().FilterSelector(filter=flt), wait=True)

    def _query_batch(self, name: str, requests: list[Any]) -> list[Sequence[Any]]:
        return [r.points for r in self.client.query_batch_points(name, requests)]

    def _retrieve(self, name: str, ids: list[str]) -> Sequence[Any]:
        return list(self.client.retrieve(name, ids, with_payload=True, with_vectors=False))

    def _scroll_page(
        self, name: str, flt: Any, offset: Any, limit: int, with_vectors: bool, fields: list[str] | None = None
    ) -> tuple[Sequence[Any], Any]:
        records, next_offset = self.client.scroll(
            name,
            scroll_filter=flt,
            limit=limit,
            offset=offset,
            with_payload=fields or True,
            with_vectors=with_vectors,
        )
        return records, next_offset

    def _count(self, name: str, flt: Any) -> int:
        return int(self.client.count(name, count_filter=flt, exact=True).count)

    def _index_kinds(self, name: str) -> dict[str, str] | None:
        options = getattr(self.client, "init_options", None) or {}
        if options.get("location") == ":memory:" or options.get("path") is not None:
            return None  # local mode: payload indexes have no effect there and none are kept
        schema = self.client.get_collection(name).payload_schema or {}
        return {key: index_kind(info.data_type, info.params) for key, info in schema.items()}

    def _create_index(self, name: str, key: str, schema: Any) -> None:
        self.client.create_payload_index(name, key, schema, wait=True)

    # -- server specifics ------------------------------------------------------------
    def flush(self, name: str) -> None:
        """Writes are acknowledged with ``wait=True``; nothing to flush."""

    def optimize(self, name: str) -> None:
        """The server builds its indexes itself."""

    def info(self, name: str) -> dict[str, Any]:
        if not self.client.collection_exists(name):
            raise CollectionNotFoundError(name, self.where)
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
            "index": self.index_settings(name),
        }

    def drop_collection(self, name: str) -> None:
        """Delete a collection."""
        if self.client.collection_exists(name):
            self.client.delete_collection(name)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
