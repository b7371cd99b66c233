"""Re-normalise a collection's BM25 vectors with its exact average document length.

BM25 divides each document's length by the collection's average length. The collection keeps
running totals of the lengths (``Store.length_stats``) and every write batch is encoded with the
average of its time, so the documents of a collection that grew or changed a lot carry
different averages, and rewritten or deleted chunks stay counted in the totals.
:func:`renormalize` recounts the lengths from the stored chunk texts and rewrites every
length-normalised vector with the exact average, in place: dense and learned-sparse vectors
and payloads are copied unchanged and no model runs.

It also upgrades a collection built before the BM25 encoder recorded its parameters (when it
normalised by a fixed 256 terms): such a collection is refused with a
:class:`~m3retriever.errors.FingerprintMismatchError` naming only the BM25 parameters, and
after :func:`renormalize` its vectors and fingerprint are current. An interrupted run leaves
every chunk either rewritten or as it was, and can simply be run again; searches during a run
see some chunks with the new weights and some with the old.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

from m3retriever.branches import EncoderSet, without_parameters
from m3retriever.built_settings import load_built
from m3retriever.collection import collection_spec, open_configured_store, stored_multivector
from m3retriever.components import encoders_for
from m3retriever.config import Config
from m3retriever.ingest import batched
from m3retriever.resolution import follow_collection, resolve
from m3retriever.retriever import Retriever
from m3retriever.store.schema import (
    BM25,
    DENSE,
    MULTIVECTOR,
    SPARSE,
    CollectionSpec,
    ScoredRecord,
    Store,
    StoredPoint,
    check_fingerprint,
)
from m3retriever.types import LengthStats, SparseVector

__all__ = ["RenormalizeReport", "renormalize"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenormalizeReport:
    """What :func:`renormalize` did.

    Attributes:
        chunks: Chunks rewritten.
        before: The length totals kept with the collection before, per branch.
        after: The recounted totals, per branch.
        upgraded: Whether the collection's fingerprint was brought up to date (a collection
            built before the BM25 parameters were recorded).
        seconds: Wall time.
    """

    chunks: int
    before: Mapping[str, LengthStats]
    after: Mapping[str, LengthStats]
    upgraded: bool
    seconds: float


def renormalize(target: Retriever | Config, *, client: Any = None, batch: int = 256) -> RenormalizeReport:
    """Recount a collection's document lengths and rewrite its BM25 vectors with them.

    Args:
        target: An open :class:`~m3retriever.Retriever` (its ingests and deletes wait until
            this is done), or the configuration of one (its store is opened here and closed
            afterwards; use this form for a collection that an older version built, which a
            retriever refuses to open).
        client: An existing ``qdrant_client.QdrantClient`` (with a configuration only).
        batch: Chunks read and rewritten per store call.

    Returns:
        A :class:`RenormalizeReport` (nothing is rewritten when the configuration has no
        length-normalised branch or the collection does not exist).

    Raises:
        FingerprintMismatchError: The collection was built with other encoders (anything
            beyond the BM25 parameters differs).
    """
    if isinstance(target, Retriever):
        # The retriever's writes wait meanwhile: an ingest between the two passes would be
        # counted in neither the totals nor the rewrite.
        with target._write_lock:
            return _run(target.store, target.encoders, _spec_of(target), batch)
    base = resolve(target)
    store = open_configured_store(base, client)
    try:
        settings = resolve(target, built=load_built(store, base.collection))  # the collection's encoders
        settings = resolve(follow_collection(target, stored_multivector(store, settings.collection)))
        encoders = encoders_for(settings)
        return _run(store, encoders, collection_spec(encoders, settings), batch)
    finally:
        store.close()


def _spec_of(retriever: Retriever) -> CollectionSpec:
    return collection_spec(retriever.encoders, retriever.settings)


def _run(store: Store, encoders: EncoderSet, spec: CollectionSpec, batch: int) -> RenormalizeReport:
    start = time.perf_counter()
    branches = encoders.length_normalized()
    name = spec.name
    stored = store.collection_fingerprint(name)
    if not branches or stored is None:
        return RenormalizeReport(0, {}, {}, False, time.perf_counter() - start)
    upgraded = _check_upgradable(name, store, stored, spec.fingerprint, list(branches))
    before = store.length_stats(name)
    after = {b: LengthStats() for b in branches}
    for page in batched(store.scroll(name, batch=batch), batch):
        texts = [_text(r) for r in page]
        for b, enc in branches.items():
            after[b] = after[b] + LengthStats.of(enc.document_lengths(texts))
    chunks = 0
    for page in batched(store.scroll(name, with_vectors=True, batch=batch), batch):
        texts = [_text(r) for r in page]
        vectors = {
            b: enc.encode_document_normalized(texts, after[b], include_texts=False)[0].sparse or []
            for b, enc in branches.items()
        }
        store.upsert(name, [_rewritten(r, {b: v[i] for b, v in vectors.items()}) for i, r in enumerate(page)])
        chunks += len(page)
        logger.info("renormalize %s: %d chunks rewritten", name, chunks)
    # The totals, then the fingerprint, are written last: a run interrupted before leaves the
    # collection as refused (or as counted) as it was, and running it again completes it.
    store.set_length_stats(name, after)
    if upgraded:
        store.set_fingerprint(name, spec.fingerprint)
    store.flush(name)
    return RenormalizeReport(chunks, before, after, upgraded, time.perf_counter() - start)


def _check_upgradable(
    name: str, store: Store, stored: Mapping[str, Any], wanted: Mapping[str, Any], branches: list[str]
) -> bool:
    """Whether the stored fingerprint differs from ``wanted`` in the length-normalised
    branches' ``parameters`` only (an upgrade); raise if anything else differs."""
    if dict(stored) == dict(wanted):
        return False
    relaxed = dict(stored)
    old, new = without_parameters(stored), without_parameters(wanted)
    for b in branches:
        if isinstance(stored.get(b), Mapping) and isinstance(wanted.get(b), Mapping) and old[b] == new[b]:
            relaxed[b] = dict(wanted[b])
    check_fingerprint(name, getattr(store, "where", "the store"), relaxed, wanted)
    return True


def _text(record: ScoredRecord) -> str:
    text = record.payload.get("text")
    return text if isinstance(text, str) else ""


def _rewritten(record: ScoredRecord, new: Mapping[str, SparseVector]) -> StoredPoint:
    """The stored point with the rewritten branch vectors in ``new`` and the rest as it was."""
    vectors = record.vectors
    return StoredPoint(
        id=record.id,
        payload=dict(record.payload),
        dense=vectors.get(DENSE),
        sparse=new.get(SPARSE, vectors.get(SPARSE)),
        bm25=new.get(BM25, vectors.get(BM25)),
        multivector=vectors.get(MULTIVECTOR),
    )
