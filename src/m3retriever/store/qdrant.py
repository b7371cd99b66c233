"""The store operations both Qdrant backends share, written once over a :class:`Translator`.

:class:`QdrantStore` implements :class:`~m3retriever.store.schema.Store` on top of a few
primitives that take and return the binding's own model objects; :class:`EdgeStore
<m3retriever.store.edge.EdgeStore>` and :class:`QdrantClientStore
<m3retriever.store.remote.QdrantClientStore>` implement only those primitives and what really
differs (the directory lock and metadata file of Edge, the server connection and cluster
settings of qdrant-client).
"""

from __future__ import annotations

import abc
import logging
import threading
from typing import Any, Iterator, Mapping, Sequence

from m3retriever.filters import And, AnyOf, Filter, payload_key
from m3retriever.store.schema import (
    CollectionSpec,
    HybridQuery,
    ScoredRecord,
    Store,
    StoredPoint,
    check_fingerprint,
    count_values,
)
from m3retriever.store.translate import CollectionModels, ModelKit, Translator, paginate

__all__ = ["QdrantStore"]

logger = logging.getLogger(__name__)

# Points per page when counting by value (only one payload field each).
_GROUP_PAGE = 4096


class QdrantStore(Store):
    """A Qdrant backend: the :class:`Store` operations over a binding's primitives.

    Args:
        kit: The binding's model constructors.
        where: The store's location, for messages.
    """

    def __init__(self, kit: ModelKit, where: str) -> None:
        self.tr = Translator(kit)
        self.where = where
        self.mutex = threading.RLock()

    # -- primitives: the binding's own calls, on its own model objects ----------------
    @abc.abstractmethod
    def _open(self, name: str) -> None:
        """Make an existing collection ready for use."""

    @abc.abstractmethod
    def _create(self, spec: CollectionSpec, models: CollectionModels) -> None:
        """Create the collection with its vectors, HNSW config, payload indexes, fingerprint."""

    @abc.abstractmethod
    def _upsert(self, name: str, points: list[Any]) -> None:
        """Write native points."""

    @abc.abstractmethod
    def _delete_ids(self, name: str, ids: list[str]) -> None:
        """Delete points by id."""

    @abc.abstractmethod
    def _delete_filter(self, name: str, flt: Any) -> None:
        """Delete the points matching a native filter."""

    @abc.abstractmethod
    def _query_batch(self, name: str, requests: list[Any]) -> list[Sequence[Any]]:
        """Run native query requests in one call; points per request, in order."""

    @abc.abstractmethod
    def _retrieve(self, name: str, ids: list[str]) -> Sequence[Any]:
        """Native records of ``ids`` (payload only)."""

    @abc.abstractmethod
    def _scroll_page(
        self, name: str, flt: Any, offset: Any, limit: int, with_vectors: bool, fields: list[str] | None = None
    ) -> tuple[Sequence[Any], Any]:
        """One scroll page: native records (with only the payload paths ``fields``, or the
        whole payload) and the next offset (``None`` at the end)."""

    @abc.abstractmethod
    def _count(self, name: str, flt: Any) -> int:
        """Exact count of the points matching a native filter."""

    @abc.abstractmethod
    def _index_kinds(self, name: str) -> dict[str, str] | None:
        """The payload indexes by payload path, each as :func:`~m3retriever.store.translate.index_kind`
        names it (``None``: the engine keeps no payload indexes)."""

    @abc.abstractmethod
    def _create_index(self, name: str, key: str, schema: Any) -> None:
        """Create the payload index ``schema`` on path ``key`` of an existing collection
        (replacing an index of another kind there)."""

    # -- the Store operations ------------------------------------------------------------
    def ensure_collection(self, spec: CollectionSpec) -> None:
        with self.mutex:
            existing = self.collection_fingerprint(spec.name)
            if existing is not None:
                check_fingerprint(spec.name, self.where, existing, spec.fingerprint)
                self._open(spec.name)
                if spec.tenant_field:
                    self._ensure_tenant_index(spec.name, spec.tenant_field)
                return
            self._create(spec, self.tr.collection(spec))

    def _ensure_tenant_index(self, name: str, field: str) -> None:
        """Give an existing collection the tenant index on ``field`` when it lacks it (one
        created before ``tenant_field`` was set), and record the field in its description when
        none is recorded. A refused index creation (a read-only API key) is logged: filtering by
        tenant works without the index, only slower on a large collection."""
        kind = self.tenant_index(name, field)
        if kind not in ("tenant", "not kept"):
            key = payload_key(field)
            try:
                self._create_index(name, key, self.tr.kit.index_type("tenant"))
            except Exception as exc:  # the engine's own error types differ per binding
                logger.warning(
                    "collection %r at %s: cannot create the tenant index on %r (%s); tenant filters "
                    "still work, only slower on a large collection. Open it once with write access, "
                    "or create a keyword payload index with is_tenant=true on %r yourself",
                    name, self.where, key, exc, key,
                )  # fmt: skip
                return
            logger.info("collection %r: created the tenant index on %r (it had a %s index)", name, key, kind)
        raw = self.metadata(name).get("spec")
        if isinstance(raw, Mapping) and not raw.get("tenant_field"):
            self.set_metadata(name, {"spec": {**raw, "tenant_field": field}})

    def tenant_index(self, name: str, field: str) -> str:
        kinds = self._index_kinds(name)
        return "not kept" if kinds is None else kinds.get(payload_key(field), "none")

    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        if points:
            self._upsert(name, self.tr.points(points))

    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        if ids:
            self._delete_ids(name, list(ids))

    def delete_by_filter(self, name: str, flt: Filter) -> None:
        self._delete_filter(name, self.tr.filter(flt))

    def query(self, name: str, queries: Sequence[HybridQuery]) -> list[list[ScoredRecord]]:
        results = self._query_batch(name, [self.tr.request(hq) for hq in queries])
        return [self.tr.records(points) for points in results]

    def retrieve(self, name: str, ids: Sequence[str]) -> list[ScoredRecord]:
        # Once per id: qdrant-client's local mode returns a repeated id twice, Edge once.
        return self.tr.records(self._retrieve(name, list(dict.fromkeys(ids)))) if ids else []

    def scroll(
        self, name: str, flt: Filter | None = None, *, with_vectors: bool = False, batch: int = 256
    ) -> Iterator[ScoredRecord]:
        native = self.tr.filter(flt)
        for point in paginate(lambda offset: self._scroll_page(name, native, offset, batch, with_vectors)):
            yield self.tr.record(point)

    def scroll_page(
        self, name: str, offset: Any = None, *, limit: int = 256, with_vectors: bool = True
    ) -> tuple[list[ScoredRecord], Any]:
        points, next_offset = self._scroll_page(name, None, offset, limit, with_vectors)
        # Edge returns a UUID object, qdrant-client a string: one form, which JSON can keep.
        if next_offset is not None and not isinstance(next_offset, int):
            next_offset = str(next_offset)
        return self.tr.records(points), next_offset

    def count(self, name: str, flt: Filter | None = None) -> int:
        return int(self._count(name, self.tr.filter(flt)))

    def count_by_value(
        self, name: str, field: str, values: Sequence[str], within: Filter | None = None
    ) -> dict[str, int]:
        """One scroll of the matching points that reads only ``field`` from their payloads."""
        wanted = list(dict.fromkeys(values))
        if not wanted:
            return {}
        key = payload_key(field)
        native = self.tr.filter(AnyOf(field, wanted) if within is None else And((AnyOf(field, wanted), within)))
        pages = paginate(lambda offset: self._scroll_page(name, native, offset, _GROUP_PAGE, False, [key]))
        return count_values((p.payload or {} for p in pages), key, wanted)
