"""Context for an answer: a whole stored document read back in order (:func:`read_document`),
and each hit's neighbouring chunks merged into one passage (:func:`expand_hits`).

Chunks are character slices of their document that overlap by ``chunk_overlap`` tokens
(:mod:`m3retriever.ingest.chunking`); each chunk's payload records its ``start`` and ``end``
offsets, so consecutive chunks are merged by cutting exactly the shared characters. A chunk
written without offsets (by an older writer) is merged by the longest suffix of the previous
chunk that begins it, which is the overlap unless the text repeats itself there.

Only the current version of a document is read: the chunks sharing the content hash of its
first chunk (or of the hit), below its chunk count, so stale chunks left by an interrupted
rewrite are never merged in. A retriever scoped to a tenant reads that tenant's chunks only.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

from m3retriever.errors import InputError
from m3retriever.filters import Eq, Filter, Range
from m3retriever.ingest import point_id
from m3retriever.store.schema import ScoredRecord, Store
from m3retriever.tenancy import Scope, tenant_of
from m3retriever.types import GAP, ChunkSpan, Hit, Passage, SearchResult, StoredDocument

__all__ = ["StoredChunk", "merge_chunks", "longest_overlap", "read_document", "expand_hits", "expand_results"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredChunk:
    """What merging needs of one stored chunk (``start``/``end``: ``None`` when not recorded)."""

    doc_id: str
    chunk_index: int
    text: str
    start: int | None = None
    end: int | None = None
    n_chunks: int | None = None
    content_hash: str | None = None
    tenant: str | None = None
    metadata: Mapping[str, Any] | None = None
    source: str | None = None

    @classmethod
    def of(cls, payload: Mapping[str, Any], tenant_field: str | None) -> "StoredChunk | None":
        """The chunk a point's payload describes (``None``: not a chunk this package wrote)."""
        doc_id, index, text = payload.get("doc_id"), _whole(payload.get("chunk_index")), payload.get("text")
        if not isinstance(doc_id, str) or index is None or not isinstance(text, str):
            return None
        digest, metadata, source = payload.get("content_hash"), payload.get("metadata"), payload.get("source")
        return cls(
            doc_id,
            index,
            text,
            _whole(payload.get("start")),
            _whole(payload.get("end")),
            _whole(payload.get("n_chunks")),
            digest if isinstance(digest, str) else None,
            tenant_of(payload, tenant_field) if tenant_field else None,
            metadata if isinstance(metadata, Mapping) else {},
            source if isinstance(source, str) else None,
        )


def _whole(value: Any) -> int | None:
    """``value`` if it is a whole number (not a bool), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def longest_overlap(previous: str, current: str) -> int:
    """The length of the longest suffix of ``previous`` that ``current`` begins with, leaving
    ``current`` at least one character of its own (consecutive chunks each add text)."""
    if not previous or not current:
        return 0
    last = previous[-1]
    for k in range(min(len(previous), len(current) - 1), 0, -1):
        if current[k - 1] == last and previous.endswith(current[:k]):
            return k
    return 0


def _overlap(previous: StoredChunk, current: StoredChunk) -> int:
    """Characters ``current`` shares with the end of ``previous``: from their offsets when both
    recorded them (and they agree with the texts), else :func:`longest_overlap`."""
    if previous.start is not None and previous.end is not None and current.start is not None:
        cut = previous.end - current.start
        fits = previous.end - previous.start == len(previous.text) and 0 <= cut <= min(
            len(previous.text), len(current.text)
        )
        if fits and previous.text.endswith(current.text[:cut]):
            return cut
    return longest_overlap(previous.text, current.text)


def merge_chunks(chunks: Sequence[StoredChunk]) -> tuple[str, tuple[ChunkSpan, ...], bool]:
    """Merge chunks sorted by ``chunk_index`` into one text.

    Returns:
        The text, each chunk's span in it, and whether the chunks were consecutive (where they
        were not, the text holds :data:`~m3retriever.types.GAP`).
    """
    parts: list[str] = []
    spans: list[ChunkSpan] = []
    length = 0
    consecutive = True
    previous: StoredChunk | None = None
    for chunk in chunks:
        cut = 0
        if previous is not None and chunk.chunk_index == previous.chunk_index + 1:
            cut = _overlap(previous, chunk)
        elif previous is not None:
            consecutive = False
            parts.append(GAP)
            length += len(GAP)
        start = length - cut
        parts.append(chunk.text[cut:])
        length += len(chunk.text) - cut
        spans.append(ChunkSpan(chunk.chunk_index, start, start + len(chunk.text)))
        previous = chunk
    return "".join(parts), tuple(spans), consecutive


def _current(chunks: Iterable[StoredChunk], version: StoredChunk) -> list[StoredChunk]:
    """The chunks of ``version``'s document version (same content hash, below its chunk count),
    one per index, in order."""
    kept: dict[int, StoredChunk] = {}
    for c in chunks:
        if version.content_hash is not None and c.content_hash != version.content_hash:
            continue
        if version.n_chunks is not None and c.chunk_index >= version.n_chunks:
            continue
        kept.setdefault(c.chunk_index, c)
    return [kept[i] for i in sorted(kept)]


def read_document(
    store: Store, collection: str, doc_id: str, *, scope: Scope | None, tenant_field: str | None
) -> StoredDocument | None:
    """The stored document ``doc_id`` (within ``scope``), or ``None`` when it is not stored.

    Raises:
        InputError: on a partitioned collection read without a scope, when several tenants hold
            a document with this id.
    """
    flt: Filter = Eq("doc_id", doc_id)
    if scope is not None:
        flt = scope.within(flt)
    found = [c for r in store.scroll(collection, flt) if (c := StoredChunk.of(r.payload, tenant_field)) is not None]
    found = [c for c in found if c.doc_id == doc_id]
    if not found:
        return None
    tenants = sorted({c.tenant or "" for c in found})
    if len(tenants) > 1:
        raise InputError(
            f"document {doc_id!r:.80} is held by several tenants ({', '.join(repr(t) for t in tenants[:5])}); "
            "read it through a retriever scoped to one of them (Retriever.scoped(tenant), --tenant)"
        )
    first = min(found, key=lambda c: c.chunk_index)
    if first.chunk_index != 0:
        hashes = Counter(c.content_hash for c in found)
        first = next(c for c in found if c.content_hash == hashes.most_common(1)[0][0])
    chunks = _current(found, first)
    text, spans, consecutive = merge_chunks(chunks)
    expected = first.n_chunks if first.n_chunks is not None else len(chunks)
    complete = consecutive and chunks[0].chunk_index == 0 and len(chunks) == expected
    return StoredDocument(doc_id, text, spans, dict(first.metadata or {}), first.source, complete)


def _tenant_of_hit(hit: Hit, tenant_field: str | None) -> str | None:
    return tenant_of({"metadata": hit.metadata}, tenant_field) if tenant_field else None


def _scheme(hit: Hit, tenant: str | None) -> tuple[bool, str | None]:
    """Whether the hit's point ids follow :func:`point_id`, and with which tenant (its own, or
    none: an unscoped ingest)."""
    for candidate in dict.fromkeys((tenant, None)):
        try:
            if point_id(hit.doc_id, hit.chunk_index, candidate) == str(hit.id).lower():
                return True, candidate
        except InputError:
            continue
    return False, None


def _window(hit: Hit, n: int) -> range:
    return range(max(0, hit.chunk_index - n), hit.chunk_index + n + 1)


def _read_windows(
    store: Store, collection: str, hits: Sequence[Hit], n: int, scope: Scope | None, tenant_field: str | None
) -> list[StoredChunk]:
    """Every stored chunk of the hits' windows: one read by point id for all hits whose ids
    follow :func:`point_id`, one filtered read for each other hit."""
    ids: list[str] = []
    records: list[ScoredRecord] = []
    for hit in hits:
        follows, tenant = _scheme(hit, _tenant_of_hit(hit, tenant_field))
        if follows:
            ids += [point_id(hit.doc_id, i, tenant) for i in _window(hit, n)]
            continue
        window = _window(hit, n)
        flt: Filter = Eq("doc_id", hit.doc_id) & Range("chunk_index", gte=window.start, lte=window.stop - 1)
        records += store.scroll(collection, scope.within(flt) if scope is not None else flt)
    if ids:
        records += store.retrieve(collection, list(dict.fromkeys(ids)))
    return [c for r in records if (c := StoredChunk.of(r.payload, tenant_field)) is not None]


def expand_hits(
    store: Store,
    collection: str,
    hits: Sequence[Hit],
    n: int,
    *,
    scope: Scope | None,
    tenant_field: str | None,
) -> list[Hit]:
    """``hits`` each with its :class:`~m3retriever.types.Passage`: its chunk and the chunks of
    the same document (same tenant, same version) up to ``n`` places before and after it, as
    far as they are stored without a gap, merged with their overlap removed."""
    if not hits:
        return list(hits)
    by_key: dict[tuple[str | None, str, int], list[StoredChunk]] = {}
    for c in _read_windows(store, collection, hits, n, scope, tenant_field):
        by_key.setdefault((c.tenant, c.doc_id, c.chunk_index), []).append(c)
    return [replace(hit, context=_passage(hit, n, by_key, tenant_field)) for hit in hits]


def expand_results(
    store: Store,
    collection: str,
    results: Sequence[SearchResult],
    n: int,
    *,
    scope: Scope | None,
    tenant_field: str | None,
) -> list[SearchResult]:
    """:func:`expand_hits` over the hits of several queries, read in one go."""
    hits = [h for r in results for h in r.hits]
    expanded = iter(expand_hits(store, collection, hits, n, scope=scope, tenant_field=tenant_field))
    return [replace(r, hits=[next(expanded) for _ in r.hits]) for r in results]


def _passage(
    hit: Hit, n: int, by_key: Mapping[tuple[str | None, str, int], list[StoredChunk]], tenant_field: str | None
) -> Passage:
    tenant = _tenant_of_hit(hit, tenant_field)

    def chunk_at(index: int, version: StoredChunk | None) -> StoredChunk | None:
        for c in by_key.get((tenant, hit.doc_id, index), ()):
            if version is None or c.content_hash == version.content_hash:
                if version is None or version.n_chunks is None or index < version.n_chunks:
                    return c
        return None

    own = next((c for c in by_key.get((tenant, hit.doc_id, hit.chunk_index), ()) if c.text == hit.text), None)
    if own is None:  # deleted or rewritten since the search: the hit alone
        return Passage(hit.text, 0, len(hit.text), (ChunkSpan(hit.chunk_index, 0, len(hit.text)),))
    run = [own]
    for step in (-1, 1):
        for distance in range(1, n + 1):
            c = chunk_at(hit.chunk_index + step * distance, own)
            if c is None:
                break
            run.append(c)
    run.sort(key=lambda c: c.chunk_index)
    text, spans, _ = merge_chunks(run)
    mine = next(s for s in spans if s.chunk_index == hit.chunk_index)
    return Passage(text, mine.start, mine.end, spans)
