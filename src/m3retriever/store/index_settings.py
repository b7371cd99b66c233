"""A collection's index settings: what they are, reading them back, checking a new request.

Quantization, on-disk storage and the HNSW graph's shape are fixed when a collection is
created (Qdrant Edge has no call that changes them afterwards). A collection records them
(Edge in its own ``edge_config.json``; qdrant-client in the collection metadata), and
:func:`check_index_settings` refuses a configuration that asks an existing collection for
other values, naming each and the fix, instead of silently searching with settings other
than the ones asked for.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from m3retriever.errors import ConfigError
from m3retriever.store.schema import QUANTIZATIONS, CollectionSpec, Store

__all__ = ["INDEX_SETTINGS", "LEGACY_INDEX_SETTINGS", "index_settings_of", "from_engine_config", "check_index_settings", "adopt_index_settings"]

INDEX_SETTINGS = ("quantization", "vectors_on_disk", "payload_on_disk", "hnsw_m", "hnsw_ef_construct")
"""The collection settings fixed at creation (``Config`` fields and ``CollectionSpec`` fields)."""

LEGACY_INDEX_SETTINGS: Mapping[str, Any] = {
    "quantization": "none",
    "vectors_on_disk": False,
    "payload_on_disk": False,
    "hnsw_m": 16,
    "hnsw_ef_construct": 128,
}
"""What every collection was created with before these were settings."""


def index_settings_of(spec: CollectionSpec) -> dict[str, Any]:
    """The index settings of ``spec`` as a plain mapping."""
    return {name: getattr(spec, name) for name in INDEX_SETTINGS}


def from_engine_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Index settings from a collection config in Qdrant's JSON shape (Edge's
    ``edge_config.json``): ``quantization_config``, ``vectors.dense.on_disk``,
    ``on_disk_payload``, ``hnsw_config``."""
    out = dict(LEGACY_INDEX_SETTINGS)
    quant = config.get("quantization_config") or {}
    kind = next(iter(quant), "none") if isinstance(quant, Mapping) else "none"
    out["quantization"] = kind if kind in QUANTIZATIONS else str(kind)
    dense = (config.get("vectors") or {}).get("dense") or {}
    out["vectors_on_disk"] = bool(dense.get("on_disk"))
    out["payload_on_disk"] = bool(config.get("on_disk_payload"))
    hnsw = config.get("hnsw_config") or {}
    out["hnsw_m"] = int(hnsw.get("m", out["hnsw_m"]))
    out["hnsw_ef_construct"] = int(hnsw.get("ef_construct", out["hnsw_ef_construct"]))
    return out


def check_index_settings(name: str, stored: Mapping[str, Any], asked: Mapping[str, Any]) -> None:
    """Refuse settings ``asked`` for explicitly that differ from those collection ``name``
    was created with.

    Args:
        name: Collection name, for the message.
        stored: The collection's settings (:meth:`Store.index_settings`).
        asked: The settings the user set explicitly (unset ones take the collection's own).

    Raises:
        ConfigError: naming each differing setting, the stored and asked values, and the fix.
    """
    diffs = [
        f"{key}: created with {stored.get(key)!r}, configured {value!r}"
        for key, value in asked.items()
        if key in INDEX_SETTINGS and value is not None and stored.get(key) != value
    ]
    if diffs:
        raise ConfigError(
            f"collection {name!r} was created with other index settings: " + "; ".join(diffs) + ". "
            "These are fixed when a collection is created: leave them unset (the collection's own "
            "apply), or ingest into a new collection (another `collection` name) with the new settings, "
            "or copy this one into a new collection with them (`m3retriever collection copy --to-collection NEW "
            "--quantization ...`, no re-encoding)."
        )


def adopt_index_settings(store: Store, spec: CollectionSpec, asked: Mapping[str, Any]) -> CollectionSpec:
    """``spec`` with the index settings of its existing collection, after checking that
    those set explicitly (``asked``; ``None`` values are unset) agree with them.

    Raises:
        ConfigError: from :func:`check_index_settings`.
    """
    stored = store.index_settings(spec.name)
    check_index_settings(spec.name, stored, asked)
    return replace(spec, **{k: v for k, v in stored.items() if k in INDEX_SETTINGS})
