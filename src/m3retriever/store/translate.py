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

import numpy as np

from m3retriever.filters import Filter, FilterBuilder, payload_key, translate
from m3retriever.store.names import DOCUMENT_INDEXED_FIELDS
from m3retriever.store.schema import (
    BM25,
    DENSE,
    DENSE2,
    INDEXED_FIELDS,
    MULTIVECTOR,
    SPARSE,
    Branch,
    CollectionSpec,
    HybridQuery,
    Quantization,
    ScoredRecord,
    StoredPoint,
)
from m3retriever.types import Distance, SparseVector

__all__ = ["IndexKind", "ModelKit", "CollectionModels", "Translator", "index_kind", "multivector", "paginate"]

IndexKind = Literal["keyword", "integer", "tenant"]


class ModelKit(FilterBuilder, Protocol):
    """Constructors of one Qdrant binding's model objects.

    Attributes:
        sparse_type: The binding's sparse vector class, as returned in results.
    """

    sparse_type: type[Any]

    def sparse_vector(self, indices: list[int], values: list[float]) -> Any: ...

    def vector_params(self, size: int, distance: Distance, on_disk: bool) -> Any: ...

    def sparse_params(self, idf: bool, on_disk: bool) -> Any: ...

    def quantization(self, kind: Quantization) -> Any:
        """The quantization config of ``kind`` (never ``"none"``), kept in RAM."""

    def multivector_params(self, size: int) -> Any:
        """Dot-product MaxSim multivector params: no HNSW graph, originals on disk, int8
        scalar quantization kept in RAM."""
        ...

    def hnsw_config(self, m: int, ef_construct: int, full_scan_threshold: int) -> Any: ...

    def index_type(self, kind: IndexKind) -> Any: ...

    def point(self, id: str, vectors: dict[str, Any], payload: dict[str, Any]) -> Any: ...

    def search_params(self, hnsw_ef: int | None, exact: bool, quantization: Any, idf_corpus: Any = None) -> Any: ...

    def quantization_search(self, rescore: bool | None, oversampling: float | None) -> Any: ...

    def prefetch(self, vector: Any, using: str, limit: int, flt: Any, params: Any) -> Any: ...

    def nearest_request(
        self, vector: Any, using: str, limit: int, flt: Any, params: Any, with_vector: Any
    ) -> Any: ...

    def fused_request(self, prefetches: list[Any], fusion: Any, limit: int, with_vector: Any) -> Any: ...

    def fused_prefetch(self, prefetches: list[Any], fusion: Any, limit: int) -> Any: ...

    def rescore_request(
        self, prefetch: Any, vector: list[list[float]], using: str, limit: int, with_vector: Any
    ) -> Any:
        """MaxSim of ``vector`` over the prefetched candidates; the quantized copy picks the
        ``limit`` best, whose scores are then computed from the original vectors."""
        ...

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
        quantization: The quantization config (``None``: none).
        payload_on_disk: Keep payloads on disk.
    """

    vectors: dict[str, Any]
    sparse: dict[str, Any]
    hnsw: Any
    indexes: tuple[tuple[str, Any], ...]
    quantization: Any = None
    payload_on_disk: bool = False


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
        disk = spec.vectors_on_disk
        vectors = {DENSE: k.vector_params(spec.dense_dim, spec.distance, disk)} if spec.dense_dim is not None else {}
        if spec.multivector_dim is not None:
            vectors[MULTIVECTOR] = k.multivector_params(spec.multivector_dim)
        if spec.dense2_dim is not None:
            vectors[DENSE2] = k.vector_params(spec.dense2_dim, spec.dense2_distance, disk)
        sparse = {}
        if spec.sparse:
            sparse[SPARSE] = k.sparse_params(spec.sparse_idf, disk)
        if spec.bm25:
            sparse[BM25] = k.sparse_params(True, disk)
        tenant = payload_key(spec.tenant_field) if spec.tenant_field else None
        own = tuple(payload_key(f) for f in spec.indexed_fields)
        keywords = INDEXED_FIELDS + tuple(f for f in DOCUMENT_INDEXED_FIELDS if f not in own) + own
        indexes = tuple((f, k.index_type("keyword")) for f in keywords if f != tenant)
        if tenant is not None:
            indexes += ((tenant, k.index_type("tenant")),)
        return CollectionModels(
            vectors=vectors,
            sparse=sparse,
            hnsw=k.hnsw_config(spec.hnsw_m, spec.hnsw_ef_construct, spec.full_scan_threshold_kb),
            indexes=indexes + (("chunk_index", k.index_type("integer")),),
            quantization=None if spec.quantization == "none" or not vectors else k.quantization(spec.quantization),
            payload_on_disk=spec.payload_on_disk,
        )

    def vector(self, v: Sequence[float] | Sequence[Sequence[float]] | SparseVector) -> Any:
        """A dense list of floats, a multivector (a list of them) or the binding's sparse vector."""
        if isinstance(v, SparseVector):
            return self.kit.sparse_vector(list(v.indices), list(v.values))
        if len(v) and not isinstance(v[0], (int, float)) and hasattr(v[0], "__len__"):
            return [[float(x) for x in row] for row in v]  # type: ignore[union-attr]
        return [float(x) for x in v]  # type: ignore[arg-type]

    def points(self, points: Sequence[StoredPoint]) -> list[Any]:
        """The binding's points (named vectors and payload)."""
        out = []
        for p in points:
            named = ((DENSE, p.dense), (SPARSE, p.sparse), (BM25, p.bm25), (DENSE2, p.dense2))
            vectors = {name: self.vector(v) for name, v in (*named, *p.vectors.items()) if v is not None}
            if p.multivector is not None:
                vectors[MULTIVECTOR] = multivector(p.multivector)
            out.append(self.kit.point(p.id, vectors, dict(p.payload)))
        return out

    def request(self, hq: HybridQuery) -> Any:
        """One query request: a single search, or a prefetch per branch fused in the engine."""
        k = self.kit
        flt = self.filter(hq.filter)
        quantization = None
        if hq.rescore is not None or hq.oversampling is not None:
            quantization = k.quantization_search(hq.rescore, hq.oversampling)
        plain = k.search_params(hq.hnsw_ef, hq.exact, quantization)
        # The engines refuse an IDF corpus on a vector without the IDF modifier.
        corpus = self.filter(hq.idf_corpus) if hq.idf_corpus is not None else None
        scoped = k.search_params(hq.hnsw_ef, hq.exact, quantization, corpus) if corpus is not None else plain

        def params(b: Branch) -> Any:
            return scoped if b.idf else plain

        with_vector = list(hq.with_vectors) if hq.with_vectors else False
        if hq.late_interaction is not None:
            return k.rescore_request(
                self._candidates(hq, flt, params), multivector(hq.late_interaction.vector), MULTIVECTOR, hq.limit, with_vector
            )
        if len(hq.branches) == 1:
            b = hq.branches[0]
            return k.nearest_request(self.vector(b.vector), b.name, hq.limit, flt, params(b), with_vector)
        prefetches = [k.prefetch(self.vector(b.vector), b.name, b.limit, flt, params(b)) for b in hq.branches]
        return k.fused_request(prefetches, self._fusion(hq), hq.limit, with_vector)

    def _fusion(self, hq: HybridQuery) -> Any:
        if hq.fusion == "rrf":
            weights = [b.weight for b in hq.branches]
            return self.kit.rrf(hq.rrf_k, None if all(w == 1.0 for w in weights) else weights)
        return self.kit.dbsf()

    def _candidates(self, hq: HybridQuery, flt: Any, params: Callable[[Branch], Any]) -> Any:
        """The prefetch a rescoring reads: the branches fused (or the lone branch's nearest)."""
        k = self.kit
        limit = hq.late_interaction.candidates if hq.late_interaction is not None else hq.limit
        if len(hq.branches) == 1:
            b = hq.branches[0]
            return k.prefetch(self.vector(b.vector), b.name, limit, flt, params(b))
        prefetches = [k.prefetch(self.vector(b.vector), b.name, b.limit, flt, params(b)) for b in hq.branches]
        return k.fused_prefetch(prefetches, self._fusion(hq), limit)

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


def index_kind(data_type: Any, params: Any) -> str:
    """A payload index as the engines describe it (its schema type and its parameters) in one
    word: ``"tenant"`` for a keyword index marked as the tenant field, else the type's name in
    lower case (``"keyword"``, ``"integer"``...)."""
    if getattr(params, "is_tenant", None) is True:
        return "tenant"
    return str(getattr(data_type, "value", data_type)).rsplit(".", 1)[-1].lower()


def multivector(rows: np.ndarray | Sequence[Sequence[float]]) -> list[list[float]]:
    """A multivector (an array or rows of floats) as the lists both bindings take; float32
    values, so what the engine stores (float32) reads back equal."""
    return np.asarray(rows, dtype=np.float32).tolist()  # type: ignore[no-any-return]


Page = Callable[[Any], "tuple[Sequence[Any], Any]"]


def paginate(page: Page) -> Iterator[Any]:
    """Follow a scroll: ``page(offset)`` returns ``(points, next offset or None)``."""
    offset = None
    while True:
        points, offset = page(offset)
        yield from points
        if offset is None:
            return
