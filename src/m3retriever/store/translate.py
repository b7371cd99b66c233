"""One translation from the neutral store description to Qdrant's model objects.

Qdrant Edge (``qdrant_edge``) and qdrant-client (``qdrant_client.models``) mirror each other's
model classes under other names and signatures. A :class:`ModelKit` holds one binding's
constructors (it is also that binding's :class:`~m3retriever.filters.FilterBuilder`);
:class:`Translator` writes the collection config, payload indexes, points, hybrid requests
and results once, on top of a kit, the way :func:`m3retriever.filters.translate` writes
filters once on top of a builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Protocol, Sequence

from m3retriever.filters import Filter, FilterBuilder, payload_key, translate
from m3retriever.store.schema import (
    BM25,
    DENSE,
    DENSE2,
    INDEXED_FIELDS,
    SPARSE,
    CollectionSpec,
    HybridQuery,
    ScoredRecord,
    StoredPoint,
)
from m3retriever.types import Distance, SparseVector

__all__ = ["IndexKind", "ModelKit", "CollectionModels", "Translator", "paginate"]

IndexKind = Literal["keyword", "integer"]


class ModelKit(FilterBuilder, Protocol):
    """Constructors of one Qdrant binding's model objects.

    Attributes:
        sparse_type: The binding's sparse vector class, as returned in results.
    """

    sparse_type: type[Any]

    def sparse_vector(self, indices: list[int], values: list[float]) -> Any: ...

    def vector_params(self, size: int, distance: Distance) -> Any: ...

    def sparse_params(self, idf: bool) -> Any: ...

    def hnsw_config(self, m: int, ef_construct: int, full_scan_threshold: int) -> Any: ...

    def index_type(self, kind: IndexKind) -> Any: ...

    def point(self, id: str, vectors: dict[str, Any], payload: dict[str, Any]) -> Any: ...

    def search_params(self, hnsw_ef: int | None, exact: bool) -> Any: ...

    def prefetch(self, vector: Any, using: str, limit: int, flt: Any, params: Any) -> Any: ...

    def nearest_request(
        self, vector: Any, using: str, limit: int, flt: Any, params: Any, with_vector: Any
    ) -> Any: ...

    def fused_request(self, prefetches: list[Any], fusion: Any, limit: int, with_vector: Any) -> Any: ...

    def rrf(self, k: int, weights: list[float] | None) -> Any: ...

    def dbsf(self) -> Any: ...


@dataclass(frozen=True)
class CollectionModels:
    """A collection's configuration as one binding's model objects.

    Attributes:
        vectors: Dense vector params by vector name (empty: no dense vector).
        sparse: Sparse vector params by vector name (empty: none).
        hnsw: HNSW config.
        indexes: ``(payload path, index type)`` for every payload index to create.
    """

    vectors: dict[str, Any]
    sparse: dict[str, Any]
    hnsw: Any
    indexes: tuple[tuple[str, Any], ...]


class Translator:
    """Neutral values (:mod:`m3retriever.store.schema`) to and from one binding's models.

    Args:
        kit: The binding's constructors.
    """

    def __init__(self, kit: ModelKit) -> None:
        self.kit = kit

    def filter(self, flt: Filter | None) -> Any:
        """The native filter (``None`` for no filter)."""
        return translate(flt, self.kit)

    def collection(self, spec: CollectionSpec) -> CollectionModels:
        """Vector params, HNSW config and payload indexes of ``spec``."""
        k = self.kit
        vectors = {DENSE: k.vector_params(spec.dense_dim, spec.distance)} if spec.dense_dim is not None else {}
        if spec.dense2_dim is not None:
            vectors[DENSE2] = k.vector_params(spec.dense2_dim, spec.dense2_distance)
        sparse = {}
        if spec.sparse:
            sparse[SPARSE] = k.sparse_params(spec.sparse_idf)
        if spec.bm25:
            sparse[BM25] = k.sparse_params(True)
        keywords = INDEXED_FIELDS + tuple(payload_key(f) for f in spec.indexed_fields)
        indexes = tuple((f, k.index_type("keyword")) for f in keywords)
        return CollectionModels(
            vectors=vectors,
            sparse=sparse,
            hnsw=k.hnsw_config(spec.hnsw_m, spec.hnsw_ef_construct, spec.full_scan_threshold_kb),
            indexes=indexes + (("chunk_index", k.index_type("integer")),),
        )

    def vector(self, v: Sequence[float] | SparseVector) -> Any:
        """A dense list of floats or the binding's sparse vector."""
        if isinstance(v, SparseVector):
            return self.kit.sparse_vector(list(v.indices), list(v.values))
        return [float(x) for x in v]

    def points(self, points: Sequence[StoredPoint]) -> list[Any]:
        """The binding's points (named vectors and payload)."""
        out = []
        for p in points:
            named = ((DENSE, p.dense), (SPARSE, p.sparse), (BM25, p.bm25), (DENSE2, p.dense2))
            vectors = {name: self.vector(v) for name, v in named if v is not None}
            out.append(self.kit.point(p.id, vectors, dict(p.payload)))
        return out

    def request(self, hq: HybridQuery) -> Any:
        """One query request: a single search, or a prefetch per branch fused in the engine."""
        k = self.kit
        flt = self.filter(hq.filter)
        params = k.search_params(hq.hnsw_ef, hq.exact)
        with_vector = list(hq.with_vectors) if hq.with_vectors else False
        if len(hq.branches) == 1:
            b = hq.branches[0]
            return k.nearest_request(self.vector(b.vector), b.name, hq.limit, flt, params, with_vector)
        prefetches = [k.prefetch(self.vector(b.vector), b.name, b.limit, flt, params) for b in hq.branches]
        if hq.fusion == "rrf":
            weights = [b.weight for b in hq.branches]
            fusion = k.rrf(hq.rrf_k, None if all(w == 1.0 for w in weights) else weights)
        else:
            fusion = k.dbsf()
        return k.fused_request(prefetches, fusion, hq.limit, with_vector)

    def record(self, point: Any) -> ScoredRecord:
        """A returned point (``id``, ``payload``, ``vector`` and, when scored, ``score``)."""
        vectors: dict[str, Any] = point.vector if isinstance(point.vector, dict) else {}
        return ScoredRecord(
            str(point.id),
            float(getattr(point, "score", 0.0) or 0.0),
            point.payload or {},
            {
                name: SparseVector(tuple(v.indices), tuple(v.values)) if isinstance(v, self.kit.sparse_type) else v
                for name, v in vectors.items()
            },
        )

    def records(self, points: Sequence[Any]) -> list[ScoredRecord]:
        """:meth:`record` of each point."""
        return [self.record(p) for p in points]


Page = Callable[[Any], "tuple[Sequence[Any], Any]"]


def paginate(page: Page) -> Iterator[Any]:
    """Follow a scroll: ``page(offset)`` returns ``(points, next offset or None)``."""
    offset = None
    while True:
        points, offset = page(offset)
        yield from points
        if offset is None:
            return
