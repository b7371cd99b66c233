"""Re-normalise a collection's BM25 vectors with its exact average document length.

BM25 divides each document's length by the collection's average length. The collection keeps
running totals of the lengths (``Store.length_stats``) and every write batch is encoded with the
average of its time, so the documents of a collection that grew or changed a lot carry
different averages, and rewritten or deleted chunks stay counted in the totals.
:func:`renormalize` recounts the lengths from the stored chunk texts and rewrites every
length-normalised vector with the exact average, in place: dense and learned-sparse vectors
and payloads are copied unchanged and no model runs.

Tenants: a collection opened for a tenant (``tenant`` set, ``Retriever.scoped``) recounts and
rewrites that tenant's chunks only, with the tenant's exact average, and replaces the tenant's
totals (``renormalize(collection, tenant=...)``, the CLI's ``--tenant``, finds the tenant field
recorded with the collection when the configuration names none). Without a scope, on a
collection partitioned by tenant (``tenant_field`` configured or
recorded with the collection), each chunk is rewritten with the exact average of its tenant
(:func:`~m3retriever.tenancy.tenant_of`), a chunk without one with the collection's, and both
the collection's totals and every tenant's are replaced by the recount.

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
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from m3retriever.branches import EncoderSet, without_parameters
from m3retriever.collection import collection_spec
from m3retriever.components import encoders_for
from m3retriever.config import Config
from m3retriever.config.checks import check_tenant
from m3retriever.config.settings import Settings
from m3retriever.errors import ConfigError
from m3retriever.ingest import batched
from m3retriever.ingest.headers import stored_encoder_text
from m3retriever.opening import OpenedCollection
from m3retriever.store.kept import (
    length_stats,
    set_fingerprint,
    set_length_stats,
    set_tenant_length_stats,
    tenant_length_stats,
)
from m3retriever.store.schema import (
    CollectionSpec,
    ScoredRecord,
    Store,
    StoredPoint,
    check_fingerprint,
)
from m3retriever.tenancy import Scope, tenant_of
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
        tenant: The tenant whose chunks were rewritten (``None``: the whole collection;
            ``before`` and ``after`` are then the tenant's totals).
        tenants: Without a tenant, on a collection partitioned by tenant: each tenant's
            recounted totals, with which its chunks were rewritten.
    """

    chunks: int
    before: Mapping[str, LengthStats]
    after: Mapping[str, LengthStats]
    upgraded: bool
    seconds: float
    tenant: str | None = None
    tenants: Mapping[str, Mapping[str, LengthStats]] = field(default_factory=dict)


def renormalize(collection: OpenedCollection, *, batch: int = 256, tenant: str | None = None) -> RenormalizeReport:
    """Recount a collection's document lengths and rewrite its BM25 vectors with them.

    Args:
        collection: The opened collection (:func:`~m3retriever.opening.open_collection`, or a
            retriever's :attr:`~m3retriever.Retriever.opened`; a collection an older version
            built, which a retriever refuses, opens this way). Its writes wait until this is
            done. One scoped to a tenant rewrites that tenant's chunks.
        batch: Chunks read and rewritten per store call.
        tenant: Rewrite this tenant's chunks only (as a scoped collection does), the tenant
            field being the configuration's ``tenant_field`` or, when that is unset, the one
            recorded with the collection.

    Returns:
        A :class:`RenormalizeReport` (nothing is rewritten when the configuration has no
        length-normalised branch or the collection does not exist).

    Raises:
        FingerprintMismatchError: The collection was built with other encoders (anything
            beyond the BM25 parameters differs).
        ConfigError: A collection that needs the upgrade, with a tenant (the upgrade rewrites
            every tenant's chunks); a ``tenant`` for a collection that records no tenant field
            and a configuration that sets none, or one other than the collection's own.
    """
    # Its writes wait meanwhile: an ingest between the two passes would be counted in neither
    # the totals nor the rewrite.
    with collection.write_lock:
        settings, scope = collection.settings, collection.scope
        if tenant is not None:
            scope = _scope(collection.store, settings, tenant)
            settings = _with_tenant(settings, scope)
        encoders = encoders_for(settings)
        return _run(collection.store, encoders, collection_spec(encoders, settings), batch, scope)


def _scope(store: Store, config: Config, tenant: str) -> Scope | None:
    """The scope of ``tenant``: its field is ``config``'s ``tenant_field``, else the one
    recorded with the collection (``None``: no such collection, nothing to rewrite)."""
    if config.tenant is not None and config.tenant != tenant:
        raise ConfigError(
            f"renormalize was given tenant {tenant!r}, but the configuration is scoped to tenant "
            f"{config.tenant!r}; give one of them"
        )
    field = config.tenant_field or _recorded_tenant_field(store, config.collection)
    if field is None:
        if not store.has_collection(config.collection):
            return None
        raise ConfigError(
            f"collection {config.collection!r} at {getattr(store, 'where', 'the store')} records no "
            f"tenant field, so tenant {tenant!r:.60} cannot be found in it; name the metadata key "
            "that holds the tenant (tenant_field, --tenant-field)"
        )
    check_tenant(field, tenant)
    return Scope(field, tenant)


def _with_tenant(config: Settings, scope: Scope | None) -> Settings:
    """``config`` scoped to ``scope`` (unchanged when ``None``)."""
    return config if scope is None else replace(config, tenant_field=scope.field, tenant=scope.tenant)


def _run(
    store: Store, encoders: EncoderSet, spec: CollectionSpec, batch: int, scope: Scope | None
) -> RenormalizeReport:
    start = time.perf_counter()
    branches = encoders.length_normalized()
    name = spec.name
    tenant = scope.tenant if scope is not None else None
    stored = store.collection_fingerprint(name)
    if not branches or stored is None:
        return RenormalizeReport(0, {}, {}, False, time.perf_counter() - start, tenant)
    upgraded = _check_upgradable(name, store, stored, spec.fingerprint, list(branches))
    if upgraded and scope is not None:
        raise ConfigError(
            f"collection {name!r} was built before the BM25 parameters were recorded; its "
            "upgrade rewrites every tenant's chunks: run renormalize without a tenant first"
        )
    # Chunks are grouped by the average they take: one group for a tenant's own run, else one
    # per tenant (on a partitioned collection) and None for the chunks of no tenant.
    flt = scope.filter if scope is not None else None
    by = None if scope is not None else (spec.tenant_field or _recorded_tenant_field(store, name))
    counted = _recount(store, name, branches, flt, by, batch)
    totals = {b: sum((g[b] for g in counted.values()), LengthStats()) for b in branches}
    averages = {**counted, None: counted[None] if scope is not None else totals}
    chunks = _rewrite(store, name, branches, flt, by, averages, totals, batch)
    # The totals, then the fingerprint, are written last: a run interrupted before leaves the
    # collection as refused (or as counted) as it was, and running it again completes it.
    tenants = {t: stats for t, stats in counted.items() if t is not None}
    if scope is not None:
        before = tenant_length_stats(store, name).get(scope.tenant, {})
        set_tenant_length_stats(store, name, {scope.tenant: counted[None]})
        after = counted[None]
    else:
        before = length_stats(store, name)
        set_length_stats(store, name, totals)
        if by:
            set_tenant_length_stats(store, name, tenants, every=True)
        after = totals
    if upgraded:
        set_fingerprint(store, name, spec.fingerprint)
    store.flush(name)
    return RenormalizeReport(chunks, before, after, upgraded, time.perf_counter() - start, tenant, tenants)


def _rewrite(
    store: Store,
    name: str,
    branches: Mapping[str, Any],
    flt: Any,
    by: str | None,
    averages: Mapping[str | None, Mapping[str, LengthStats]],
    otherwise: Mapping[str, LengthStats],
    batch: int,
) -> int:
    """Rewrite the length-normalised vectors of the chunks matching ``flt``, each group (as
    :func:`_recount` groups them) with its totals in ``averages`` (``otherwise`` for a group
    that appeared since); returns the chunks rewritten."""
    chunks = 0
    for page in batched(store.scroll(name, flt, with_vectors=True, batch=batch), batch):
        groups: dict[str | None, list[int]] = {}
        for i, r in enumerate(page):
            groups.setdefault(tenant_of(r.payload, by) if by else None, []).append(i)
        new: dict[int, dict[str, SparseVector]] = {}
        for key, rows in groups.items():
            texts = [_text(page[i]) for i in rows]
            for b, enc in branches.items():
                stats = averages.get(key, otherwise)[b]
                vectors = enc.encode_document_normalized(texts, stats, include_texts=False)[0].sparse or []
                for i, v in zip(rows, vectors):
                    new.setdefault(i, {})[b] = v
        store.upsert(name, [_rewritten(r, new.get(i, {})) for i, r in enumerate(page)])
        chunks += len(page)
        logger.info("renormalize %s: %d chunks rewritten", name, chunks)
    return chunks


def _recorded_tenant_field(store: Store, name: str) -> str | None:
    """The tenant field recorded with the collection's description (``None``: none)."""
    spec = store.metadata(name).get("spec")
    value = spec.get("tenant_field") if isinstance(spec, Mapping) else None
    return value if isinstance(value, str) and value else None


def _recount(
    store: Store, name: str, branches: Mapping[str, Any], flt: Any, by: str | None, batch: int
) -> dict[str | None, dict[str, LengthStats]]:
    """The stored chunks' length totals per branch, per tenant of field ``by`` (``None``: the
    chunks of no tenant, or every chunk when ``by`` is ``None``)."""
    counted: dict[str | None, dict[str, LengthStats]] = {None: {b: LengthStats() for b in branches}}
    for page in batched(store.scroll(name, flt, batch=batch), batch):
        groups: dict[str | None, list[str]] = {}
        for r in page:
            groups.setdefault(tenant_of(r.payload, by) if by else None, []).append(_text(r))
        for key, texts in groups.items():
            own = counted.setdefault(key, {b: LengthStats() for b in branches})
            for b, enc in branches.items():
                own[b] = own[b] + LengthStats.of(enc.document_lengths(texts))
    return counted


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
    check_fingerprint(name, store.where, relaxed, wanted)
    return True


def _text(record: ScoredRecord) -> str:
    """What ingest encoded of the chunk: its text, after its header when it has one."""
    return stored_encoder_text(record.payload)


def _rewritten(record: ScoredRecord, new: Mapping[str, SparseVector]) -> StoredPoint:
    """The stored point with the rewritten branch vectors in ``new`` and every other named
    vector (``dense2`` and the multivector included) as it was."""
    return StoredPoint(id=record.id, payload=dict(record.payload), vectors={**record.vectors, **new})
