"""What is kept with a collection beside its points: its encoder fingerprint, its document
length totals (the collection's and each tenant's) and its own search defaults, written once
over :meth:`Store.metadata <m3retriever.store.schema.Store.metadata>` and
:meth:`~m3retriever.store.schema.Store.set_metadata`, so the store interface keeps only the
engine's operations. A read-modify-write holds the store's ``mutex``.
"""

from __future__ import annotations

from typing import Any, Mapping

from m3retriever.store.schema import Store
from m3retriever.types import LengthStats

__all__ = [
    "TENANT_LENGTHS",
    "add_length_stats",
    "length_stats",
    "search_defaults",
    "set_fingerprint",
    "set_length_stats",
    "set_search_defaults",
    "set_tenant_length_stats",
    "tenant_length_stats",
]

TENANT_LENGTHS = "tenant_lengths"
"""The metadata key of the per-tenant length totals: tenant -> branch -> ``{total, count}``."""


def set_fingerprint(store: Store, name: str, fingerprint: Mapping[str, Any]) -> None:
    """Record a new encoder fingerprint with an existing collection (after its vectors were
    rewritten to match it)."""
    store.set_metadata(name, {"fingerprint": dict(fingerprint)})


def length_stats(store: Store, name: str) -> dict[str, LengthStats]:
    """The document length totals kept with collection ``name``, per branch (empty for a
    collection without length-normalised branches, or built before they were kept)."""
    lengths = store.metadata(name).get("lengths") or {}
    return {branch: LengthStats.from_dict(v) for branch, v in lengths.items()}


def set_length_stats(store: Store, name: str, stats: Mapping[str, LengthStats]) -> None:
    """Replace the length totals of the branches in ``stats`` (others are kept)."""
    # The whole mapping is written as one key (a server merges keys only one level deep).
    # Two processes writing to one server collection at once may lose one's update (the
    # totals are an estimate; renormalize recounts them).
    with store.mutex:
        lengths = {branch: s.as_dict() for branch, s in length_stats(store, name).items()}
        lengths.update({branch: s.as_dict() for branch, s in stats.items()})
        store.set_metadata(name, {"lengths": lengths})


def tenant_length_stats(store: Store, name: str) -> dict[str, dict[str, LengthStats]]:
    """The document length totals kept per tenant of collection ``name``: tenant -> branch ->
    totals (empty when none are kept)."""
    raw = store.metadata(name).get(TENANT_LENGTHS)
    if not isinstance(raw, Mapping):
        return {}
    return {
        str(tenant): {str(b): LengthStats.from_dict(v) for b, v in branches.items()}
        for tenant, branches in raw.items()
        if isinstance(branches, Mapping)
    }


def add_length_stats(store: Store, name: str, added: Mapping[str, LengthStats], tenant: str | None = None) -> None:
    """Add a write batch's length totals, per branch, to the collection's totals and, with
    ``tenant``, to that tenant's (one read and one write of each, under the store's mutex)."""
    if not added:
        return
    with store.mutex:
        set_length_stats(store, name, _plus(length_stats(store, name), added))
        if tenant is not None:
            own = tenant_length_stats(store, name).get(tenant, {})
            set_tenant_length_stats(store, name, {tenant: _plus(own, added)})


def set_tenant_length_stats(
    store: Store, name: str, stats: Mapping[str, Mapping[str, LengthStats]], *, every: bool = False
) -> None:
    """Replace the length totals of the tenants in ``stats`` (``every``: the totals of every
    tenant become ``stats``, a tenant left out loses its totals)."""
    # The whole mapping is written as one metadata key: the engines replace a key whole.
    with store.mutex:
        kept = {} if every else tenant_length_stats(store, name)
        for tenant, branches in stats.items():
            kept[tenant] = {**kept.get(tenant, {}), **branches}
        raw = {t: {b: s.as_dict() for b, s in branches.items()} for t, branches in kept.items()}
        store.set_metadata(name, {TENANT_LENGTHS: raw})


def search_defaults(store: Store, name: str) -> dict[str, Any]:
    """The search defaults saved with collection ``name`` (empty if none, or no collection)."""
    return dict(store.metadata(name).get("search_defaults") or {})


def set_search_defaults(store: Store, name: str, values: Mapping[str, Any]) -> None:
    """Replace the search defaults saved with an existing collection (``{}`` clears them)."""
    store.set_metadata(name, {"search_defaults": dict(values)})


def _plus(totals: Mapping[str, LengthStats], added: Mapping[str, LengthStats]) -> dict[str, LengthStats]:
    """``totals`` of the branches in ``added`` with ``added`` counted in."""
    return {b: totals.get(b, LengthStats()) + s for b, s in added.items()}
