"""A neutral description of a collection and a hybrid query.

:mod:`m3retriever.store.translate` turns these values into the model objects of either Qdrant
binding (Edge or qdrant-client), so the retriever is written once for both backends.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Literal, Mapping, Sequence

from m3retriever.errors import FingerprintMismatchError
from m3retriever.filters import AnyOf, Filter, payload_key
from m3retriever.types import Distance, LengthStats, SparseVector

__all__ = [
    "DENSE",
    "SPARSE",
    "BM25",
    "DENSE2",
    "INDEXED_FIELDS",
    "CollectionSpec",
    "StoredPoint",
    "Branch",
    "HybridQuery",
    "ScoredRecord",
    "Store",
    "check_fingerprint",
    "count_values",
]

DENSE = "dense"
SPARSE = "sparse"
BM25 = "bm25"
DENSE2 = "dense2"  # the optional extra dense branch (a fine-tuned model, for example)

# Keyword payload indexes created on every collection.
INDEXED_FIELDS = ("doc_id", "source", "content_hash")

Fusion = Literal["rrf", "dbsf"]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def check_fingerprint(name: str, where: str, stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    """Raise :class:`FingerprintMismatchError` naming each setting that differs.

    Args:
        name: Collection name.
        where: The store's location, for the message.
        stored: The fingerprint the collection was built with.
        wanted: The configured encoders' fingerprint.
    """
    old, new = _flatten(dict(stored)), _flatten(dict(wanted))
    keys = [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    diffs = [f"{key}: built with {old.get(key, '(unset)')!r}, configured {new.get(key, '(unset)')!r}" for key in keys]
    if diffs:
        fix = "Use the settings it was built with, another collection name, or delete the collection and re-ingest."
        if all(key.split(".")[0] == DENSE2 for key in keys):
                        fix = (
                "Only the extra dense branch differs: configure dense2_encoder and dense2_model as "
                "the collection has them, or add (or replace) the branch with `m3retriever "
                "add-branch` (it re-encodes that branch alone)."
            )
        elif all(".parameters." in key for key in keys):
            fix = (
                "Only the BM25 parameters differ (the collection was built before they were "
                "recorded, with a fixed average length): run `m3retriever renormalize` with the "
                "same settings (or m3retriever.renormalize(config)) to rewrite its BM25 vectors "
                "in place, without re-encoding."
            )
        raise FingerprintMismatchError(
            f"collection {name!r} at {where} was built with other encoder settings: " + "; ".join(diffs) + ". " + fix
        )


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
        hnsw_m: HNSW graph degree.
        hnsw_ef_construct: HNSW build beam.
        full_scan_threshold_kb: Below this many KB of vectors a segment is searched exactly.
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
    hnsw_m: int = 16
    hnsw_ef_construct: int = 128
    full_scan_threshold_kb: int = 10_000
    dense2_dim: int | None = None
    dense2_distance: Distance = "cosine"


@dataclass(frozen=True)
class StoredPoint:
    """One chunk as written to the store."""

    id: str
    payload: Mapping[str, Any]
    dense: Sequence[float] | None = None
    sparse: SparseVector | None = None
    bm25: SparseVector | None = None
    dense2: Sequence[float] | None = None


@dataclass(frozen=True)
class Branch:
    """One prefetch of a hybrid query.

    Attributes:
        name: Vector name (``dense``, ``sparse``, ``bm25`` or ``dense2``).
        vector: Dense list or sparse vector.
        limit: Candidates this branch contributes.
        weight: Weight in weighted RRF.
    """

    name: str
    vector: Sequence[float] | SparseVector
    limit: int
    weight: float = 1.0


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
    """

    branches: tuple[Branch, ...]
    limit: int
    fusion: Fusion = "rrf"
    rrf_k: int = 60
    filter: Filter | None = None
    hnsw_ef: int | None = None
    exact: bool = False
    with_vectors: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScoredRecord:
    """A point returned by the store, with its score (``0.0`` for scroll/retrieve)."""

    id: str
    score: float
    payload: Mapping[str, Any]
    vectors: Mapping[str, Any] = field(default_factory=dict)


class Store(abc.ABC):
    """The operations the retriever needs from a vector store."""

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
    def set_fingerprint(self, name: str, fingerprint: Mapping[str, Any]) -> None:
        """Record a new encoder fingerprint with an existing collection (after its vectors
        were rewritten to match it)."""

    @abc.abstractmethod
    def length_stats(self, name: str) -> dict[str, LengthStats]:
        """The document length totals kept with collection ``name``, per branch (empty for a
        collection without length-normalised branches, or built before they were kept)."""

    @abc.abstractmethod
    def set_length_stats(self, name: str, stats: Mapping[str, LengthStats]) -> None:
        """Replace the length totals of the branches in ``stats`` (others are kept)."""

    @abc.abstractmethod
    def search_defaults(self, name: str) -> dict[str, Any]:
        """The search defaults saved with collection ``name`` (empty if none, or no collection)."""

    @abc.abstractmethod
    def set_search_defaults(self, name: str, values: Mapping[str, Any]) -> None:
        """Replace the search defaults saved with an existing collection (``{}`` clears them)."""

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

    def count_by_value(self, name: str, field: str, values: Sequence[str]) -> dict[str, int]:
        """Exact number of points whose ``field`` equals each of ``values`` (0 if none), in
        one call whatever the number of values (this default scrolls the matching points)."""
        wanted = list(dict.fromkeys(values))
        if not wanted:
            return {}
        payloads = (r.payload for r in self.scroll(name, AnyOf(field, wanted)))
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

    def flush(self, name: str) -> None:
        """Make acknowledged writes durable (no-op where writes are synchronous)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release resources and locks."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
