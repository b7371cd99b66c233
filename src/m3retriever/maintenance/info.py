"""What ``m3retriever collection info`` and :meth:`~m3retriever.Retriever.info` report about an
opened collection: counts, sizes, models, index settings and the settings in force."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from m3retriever.branches import EncoderSet
from m3retriever.config.built import settings_in_force
from m3retriever.opening import OpenedCollection
from m3retriever.rerankers.base import Reranker
from m3retriever.store.index_settings import INDEX_SETTINGS

__all__ = ["collection_info"]


def collection_info(
    opened: OpenedCollection, encoders: EncoderSet, reranker: Reranker | None, lengths: Mapping[str, int | None],
    count: Callable[[Any], int],
) -> dict[str, Any]:  # fmt: skip
    """Counts, sizes, models and settings of an opened collection (what
    :meth:`~m3retriever.Retriever.info` reports).

    Args:
        opened: The collection.
        encoders: Its encoders; ``reranker``: its reranker, or ``None``.
        lengths: The token lengths in force (:func:`lengths_in_force`).
        count: Counts its chunks matching a filter (within the tenant, if any).
    """
    settings, name = opened.settings, opened.name
    out: dict[str, Any] = {
        "profile": settings.profile,
        "collection": name,
        "encoders": encoders.fingerprint(),
        "reranker": {"name": reranker.spec.name, "model": reranker.spec.model} if reranker else None,
        "search_defaults": dict(opened.saved),  # the collection's own
        "tenant": opened.scope.tenant if opened.scope is not None else None,
        "tenant_field": settings.tenant_field,
        "settings": settings_in_force(opened.config, settings, opened.saved, opened.built),
        "lengths": dict(lengths),
    }
    if not opened.exists():
        return {**out, "points": 0, "documents": 0}
    out.update(opened.store.info(name))
    for key in INDEX_SETTINGS:  # an existing collection's own (fixed at its creation)
        source = "explicit" if getattr(opened.config, key) is not None else "collection"
        out["settings"][key] = {"value": out["index"][key], "source": source}
    out["points"] = count(None)  # exact; the engine's is an estimate
    out["documents"] = count({"chunk_index": 0})
    field = settings.tenant_field
    out["tenant_index"] = opened.store.tenant_index(name, field) if field else None
    return out
