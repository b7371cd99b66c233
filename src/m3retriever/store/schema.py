"""A neutral description of a collection and a hybrid query.

:mod:`m3retriever.store.translate` turns these values into the model objects of either Qdrant
binding (Edge or qdrant-client), so the retriever is written once for both backends.
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass, field, fields, replace
from itertools import islice
from typing import Any, Iterable, Iterator, Literal, Mapping, Sequence

import numpy as np

from m3retriever.errors import StoreError
from m3retriever.filters import And, AnyOf, Filter, payload_key

# Re-exported: the branch names and the fingerprint check are imported from here.
from m3retriever.store.fingerprint import check_fingerprint as check_fingerprint
from m3retriever.store.names import BM25 as BM25
from m3retriever.store.names import DENSE as DENSE
from m3retriever.store.names import DENSE2 as DENSE2
from m3retriever.store.names import INDEXED_FIELDS as INDEXED_FIELDS
from m3retriever.store.names import MULTIVECTOR as MULTIVECTOR
from m3retriever.store.names import SPARSE as SPARSE
from m3retriever.types import Distance, SparseVector

__all__ = [
    "DENSE",
    "SPARSE",
    "BM25",
    "MULTIVECTOR",
    "DENSE2",
    "INDEXED_FIELDS",
    "CollectionSpec",
    "StoredPoint",
    "Branch",
    "Rescore",
    "HybridQuery",
    "Quantization",
    "QUANTIZATIONS",
    "ScoredRecord",
    "Store",
    "check_fingerprint",
    "count_values",
    "spec_from_dict",
]

Fusion = Literal["rrf", "dbsf"]
Quantization = Literal["none", "scalar", "binary", "turbo"]
QUANTIZATIONS: tuple[str, ...] = ("none", "scalar", "binary", "turbo")


def count_values(payloads: Iterable[Mapping[str, Any]], key: str, values: Sequence[str]) -> dict[str, int]:
    """How many payloads hold each of ``values`` at the dotted path ``key`` (a list there
    counts for each of its elements, as a filter would match it)."""
    counts = dict.fromkeys(values, 0)
    parts = key.split(".")
    for payload in payloads:
        node: Any = payload
        for part in parts:
            node = node.get(part) if isinstance(node, (dict, Mapping)) else None
        if isinstance(node, str):
            if node in counts:
                counts[node] += 1
        elif isinstance(node, list):
            for value in {v for v in node if isinstance(v, str)}:
                if value in counts:
                    counts[value] += 1
    return counts


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection holds.

    Attributes:
        name: Collection name.
        dense_dim: Size of the ``dense`` vector (``None``: no dense vector).
        distance: Distance of the dense vector.
        sparse: Whether a learned ``sparse`` vector exists.
        sparse_idf: Apply the engine's IDF modifier to ``sparse``.
        bm25: Whether a ``bm25`` sparse vector (IDF modifier on) exists.
        fingerprint: Encoder identity recorded with the collection.
        indexed_fields: Extra metadata keys to index as keywords (``metadata.<key>``).
        tenant_field: Metadata key indexed as the tenant partition (``None``: none).
        hnsw_m: HNSW graph degree.
        hnsw_ef_construct: HNSW build beam.
        full_scan_threshold_kb: Below this many KB of vectors a segment is searched exactly.
        quantization: Compressed copy of the dense vectors kept in RAM and searched first
            (``scalar``: int8, 4x smaller; ``binary``: 1 bit per dimension, 32x; ``turbo``:
            TurboQuant at 4 bits, 8x); the float vectors rescore the candidates.
        vectors_on_disk: Keep the float dense vectors and the sparse indexes memory-mapped on
            disk instead of in RAM.
        payload_on_disk: Keep payloads on disk, read only for returned points.
        multivector_dim: Size of each token vector of the ``colbert`` multivector (``None``: no
            multivector). It is compared by MaxSim over dot products, has no HNSW graph (it
            only rescores candidates), keeps its original vectors on disk and an int8
            scalar-quantized copy in RAM.
        dense2_dim: Size of the extra ``dense2`` vector (``None``: none).
        dense2_distance: Its distance.
    """

    name: str
    dense_dim: int | None
    distance: Distance = "cosine"
    sparse: bool = True
    sparse_idf: bool = False
    bm25: bool = False
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    indexed_fields: tuple[str, ...] = ()
    tenant_field: str | None = None
    hnsw_m: int = 16
    hnsw_ef_construct: int = 128
    full_scan_threshold_kb: int = 10_000
    quantization: Quantization = "none"
    vectors_on_disk: bool = False
    payload_on_disk: bool = False
    multivector_dim: int | None = None
    dense2_dim: int | None = None
    dense2_distance: Distance = "cosine"


def spec_from_dict(values: Mapping[str, Any]) -> CollectionSpec:
    """A :class:`CollectionSpec` from its stored form (``dataclasses.asdict``, through JSON);
    keys this version does not know are left out."""
    known = {f.name for f in fields(CollectionSpec)}
    kwargs = {k: v for k, v in values.items() if k in known}
    kwargs["indexed_fields"] = tuple(kwargs.get("indexed_fields") or ())
    return CollectionSpec(**kwargs)


@dataclass(frozen=True)
class StoredPoint:
    """One chunk as written to the store (``multivector``: one row per token vector)."""

    id: str
    payload: Mapping[str, Any]
    dense: Sequence[float] | None = None
    sparse: SparseVector | None = None
    bm25: SparseVector | None = None
    vectors: Mapping[str, Any] = field(default_factory=dict)
    """Further named vectors, written as they are (a dense list, a :class:`SparseVector` or
    a multivector, a list of dense lists): a copy carries every vector a point holds."""
    multivector: np.ndarray | Sequence[Sequence[float]] | None = None
    dense2: Sequence[float] | None = None


@dataclass(frozen=True)
class Branch:
    """One prefetch of a hybrid query.

    Attributes:
        name: Vector name (``dense``, ``sparse``, ``bm25`` or ``dense2``).
        vector: Dense list or sparse vector.
        limit: Candidates this branch contributes.
        weight: Weight in weighted RRF.
        idf: The engine applies IDF to this vector (its IDF corpus can be narrowed).
    """

    name: str
    vector: Sequence[float] | SparseVector
    limit: int
    weight: float = 1.0
    idf: bool = False


@dataclass(frozen=True)
class Rescore:
    """Rescore the fused candidates by MaxSim of the ``colbert`` multivector.

    Attributes:
        vector: The query's token vectors, one row each.
        candidates: Fused candidates read by the rescoring (the fusion's limit).
    """

    vector: np.ndarray | Sequence[Sequence[float]]
    candidates: int


@dataclass(frozen=True)
class HybridQuery:
    """Prefetch each branch (with the filter), then fuse in the engine.

    Attributes:
        branches: One or more branches; with one branch no fusion happens.
        limit: Fused candidates to return.
        fusion: ``rrf`` or ``dbsf``.
        rrf_k: RRF's k constant.
        filter: Filter applied in every prefetch.
        hnsw_ef: HNSW beam for the dense branch.
        exact: Search exactly instead of through HNSW.
        with_vectors: Vector names to return with the fused hits.
        rescore: On a quantized collection, rescore the candidates with the float vectors
            (``None``: the engine's default).
        oversampling: On a quantized collection, fetch this many times the limit from the
            quantized vectors before rescoring (``None``: the engine's default, 1).
        idf_corpus: The points IDF statistics are computed over, for branches with ``idf``
            (``None``: the whole collection).
        late_interaction: Rescore the ``late_interaction.candidates`` fused (or, with one branch, nearest)
            candidates by multivector MaxSim in the same request; ``limit`` of them are
            returned, scored by the engine's MaxSim (the sum over query vectors).
    """

    branches: tuple[Branch, ...]
    limit: int
    fusion: Fusion = "rrf"
    rrf_k: int = 60
    filter: Filter | None = None
    hnsw_ef: int | None = None
    exact: bool = False
    with_vectors: tuple[str, ...] = ()
    rescore: bool | None = None
    oversampling: float | None = None
    idf_corpus: Filter | None = None
    late_interaction: Rescore | None = None


@dataclass(frozen=True)
class ScoredRecord:
    """A point returned by the store, with its score (``0.0`` for scroll/retrieve)."""

    id: str
    score: float
    payload: Mapping[str, Any]
    vectors: Mapping[str, Any] = field(default_factory=dict)


class Store(abc.ABC):
    """The operations the retriever needs from a vector store: the engine's own. What is kept
    with a collection beside its points (length totals, search defaults) is read and written
    over :meth:`metadata` by :mod:`m3retriever.store.kept`.

    Attributes:
        where: The store's location, for messages (a directory, ``:memory:`` or a URL).
        mutex: Held around a read-modify-write of a collection's metadata.
    """

    where: str
    mutex: threading.RLock

    @abc.abstractmethod
    def ensure_collection(self, spec: CollectionSpec) -> None:
        """Create the collection, or check that an existing one matches ``spec``.

        Raises:
            FingerprintMismatchError: if it exists with another encoder fingerprint.
        """

    @abc.abstractmethod
    def collection_fingerprint(self, name: str) -> Mapping[str, Any] | None:
        """The fingerprint stored with collection ``name`` (``None`` if it doesn't exist)."""

    @abc.abstractmethod
    def index_settings(self, name: str) -> dict[str, Any]:
        """The index settings collection ``name`` was created with (quantization,
        vectors_on_disk, payload_on_disk, hnsw_m, hnsw_ef_construct; a collection created
        before they were settings has the defaults of that time: none, false, false, 16, 128)."""

    @abc.abstractmethod
    def tenant_index(self, name: str, field: str) -> str:
        """The payload index on metadata key ``field``: ``"tenant"`` (a keyword index marked as
        the tenant field), ``"keyword"`` (not marked), ``"none"``, another index type's name, or
        ``"not kept"`` where the engine keeps no payload indexes (qdrant-client's local mode)."""

    @abc.abstractmethod
    def metadata(self, name: str) -> dict[str, Any]:
        """Everything kept with collection ``name`` beside its points, by key: ``fingerprint``,
        ``spec``, ``lengths``, ``search_defaults``... (empty if no collection)."""

    @abc.abstractmethod
    def set_metadata(self, name: str, values: Mapping[str, Any]) -> None:
        """Replace the given keys of an existing collection's metadata (a ``None`` value
        removes its key); other keys are kept."""

    def stored_spec(self, name: str) -> CollectionSpec | None:
        """The description collection ``name`` was created with, its current fingerprint
        included (``None`` if it does not exist).

        Raises:
            StoreError: if the collection keeps no description of itself.
        """
        fingerprint = self.collection_fingerprint(name)
        if fingerprint is None:
            return None
        raw = self.metadata(name).get("spec")
        if not isinstance(raw, Mapping):
            raise StoreError(
                f"collection {name!r} keeps no description of its vectors (it was created by an "
                "older version); re-create it with this version to copy or restore it"
            )
        return spec_from_dict({**raw, "name": name, "fingerprint": dict(fingerprint)})

    @abc.abstractmethod
    def scroll_page(
        self, name: str, offset: Any = None, *, limit: int = 256, with_vectors: bool = True
    ) -> tuple[list[ScoredRecord], Any]:
        """One page of every point in id order from ``offset`` (``None``: the first), and the
        offset of the next page (``None`` after the last): a scroll that can be resumed."""

    @abc.abstractmethod
    def upsert(self, name: str, points: Sequence[StoredPoint]) -> None:
        """Insert or replace points by id."""

    @abc.abstractmethod
    def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        """Delete points by id."""

    @abc.abstractmethod
    def delete_by_filter(self, name: str, flt: Filter) -> None:
        """Delete every point matching ``flt``."""

    @abc.abstractmethod
    def query(self, name: str, queries: Sequence[HybridQuery]) -> list[list[ScoredRecord]]:
        """Run several hybrid queries in one batch call; results in request order."""

    @abc.abstractmethod
    def retrieve(self, name: str, ids: Sequence[str]) -> list[ScoredRecord]:
        """Fetch points by id (payload only); missing ids are left out."""

    @abc.abstractmethod
    def scroll(
        self, name: str, flt: Filter | None = None, *, with_vectors: bool = False, batch: int = 256
    ) -> Iterator[ScoredRecord]:
        """Iterate over the points matching ``flt`` (payload, optionally vectors)."""

    @abc.abstractmethod
    def count(self, name: str, flt: Filter | None = None) -> int:
        """Exact number of points matching ``flt``."""

    def count_by_value(
        self, name: str, field: str, values: Sequence[str], within: Filter | None = None
    ) -> dict[str, int]:
        """Exact number of points whose ``field`` equals each of ``values`` (0 if none), among
        the points matching ``within`` (``None``: all), in one call whatever the number of
        values (this default scrolls the matching points)."""
        wanted = list(dict.fromkeys(values))
        if not wanted:
            return {}
        flt: Filter = AnyOf(field, wanted) if within is None else And((AnyOf(field, wanted), within))
        payloads = (r.payload for r in self.scroll(name, flt))
        return count_values(payloads, payload_key(field), wanted)

    @abc.abstractmethod
    def optimize(self, name: str) -> None:
        """Build indexes after bulk writes (no-op where the engine does it itself)."""

    @abc.abstractmethod
    def info(self, name: str) -> dict[str, Any]:
        """Counts, sizes and configuration of the collection."""

    @abc.abstractmethod
    def drop_collection(self, name: str) -> None:
        """Delete a collection and everything in it."""

    def has_collection(self, name: str) -> bool:
        """Whether collection ``name`` exists."""
        return self.collection_fingerprint(name) is not None

    def finish_replace(self, name: str) -> bool:
        """Finish a replace of ``name`` that was cut short (whether one was). The embedded
        store does it when it opens; a server looks for a copy marked as replacing ``name``."""
        return False

    def replace_collection(self, name: str, source: str, *, batch: int = 256) -> int:
        """Make collection ``name`` what the complete collection ``source`` is (points,
        vectors, everything kept with it), then drop ``source``; the points of ``name``.

        The embedded store swaps folders atomically. Here (a server) ``source`` is first
        marked as replacing ``name`` (:data:`REPLACES_KEY`): a run killed during the copy
        leaves ``source`` complete and marked, and calling this again finishes the job.
        """
        spec = self.stored_spec(source)
        if spec is None:
            raise StoreError(f"collection {source!r} is gone; nothing to replace {name!r} with")
        self.set_metadata(source, {REPLACES_KEY: name})
        self.drop_collection(name)
        self.ensure_collection(replace(spec, name=name))
        copied = 0
        for page in _pages(self.scroll(source, with_vectors=True, batch=batch), batch):
            self.upsert(name, [StoredPoint(id=r.id, payload=dict(r.payload), vectors=dict(r.vectors)) for r in page])
            copied += len(page)
        own = {"fingerprint", "spec", "index", REPLACES_KEY}
        kept = {k: v for k, v in self.metadata(source).items() if k not in own}
        if kept:
            self.set_metadata(name, kept)
        self.flush(name)
        self.drop_collection(source)
        return copied

    def flush(self, name: str) -> None:
        """Make acknowledged writes durable (no-op where writes are synchronous)."""

    def warm_up(self, name: str, *, payloads: bool = False) -> int:
        """Read collection ``name``'s vectors and indexes (and payloads: ``payloads``) into
        memory so that the first queries do not wait on disk reads; the bytes read (0 where the
        backend keeps its own caches, as a server does)."""
        return 0

    @abc.abstractmethod
    def close(self) -> None:
        """Release resources and locks."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


REPLACES_KEY = "replaces"
"""Metadata key of a complete copy that is replacing the collection it names."""

COPYING_KEY = "copy"
"""Metadata key of a collection that is the target of a copy not finished yet (where to resume)."""


def _pages(items: Iterable[ScoredRecord], size: int) -> Iterator[list[ScoredRecord]]:
    it = iter(items)
    while page := list(islice(it, size)):
        yield page
