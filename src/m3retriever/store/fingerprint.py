"""The check of a collection's encoder fingerprint against the configured encoders'."""

from __future__ import annotations

from typing import Any, Mapping

from m3retriever.errors import FingerprintMismatchError
from m3retriever.store.names import DENSE2, MULTIVECTOR

__all__ = ["check_fingerprint"]


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
    # Chunk headers are recorded only when on (m3retriever.ingest.headers.FINGERPRINT_KEY).
    old, new = {"chunk_headers": "off", **old}, {"chunk_headers": "off", **new}
    keys = [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    diffs = [f"{key}: built with {old.get(key, '(unset)')!r}, configured {new.get(key, '(unset)')!r}" for key in keys]
    if diffs:
        fix = "Use the settings it was built with, another collection name, or delete the collection and re-ingest."
        if all(key.split(".")[0] == MULTIVECTOR for key in keys):
            fix = (
                "Only the late-interaction (ColBERT) multivector differs: storing it, or not, "
                "needs a re-ingest. Leave `multivector` unset (it follows the collection), or "
                "ingest into another collection (or delete this one and ingest again) with the "
                "`multivector` setting you want."
            )
        elif keys == ["chunk_headers"]:
            fix = (
                "Only the chunk headers differ: the vectors were encoded with the other setting, so "
                "changing it needs a re-ingest. Leave `chunk_headers` unset (it follows the "
                "collection), or ingest into another collection (or delete this one and ingest "
                "again) with the `chunk_headers` you want."
            )
        elif all(key.split(".")[0] == DENSE2 for key in keys):
            fix = (
                "Only the extra dense branch differs: configure dense2_encoder and dense2_model as "
                "the collection has them, or add (or replace) the branch with `m3retriever collection "
                "add-branch` (it re-encodes that branch alone)."
            )
        elif all(".parameters." in key for key in keys):
            fix = (
                "Only the BM25 parameters differ (the collection was built before they were "
                "recorded, with a fixed average length): run `m3retriever collection renormalize` with the "
                "same settings (or m3retriever.renormalize(config)) to rewrite its BM25 vectors "
                "in place, without re-encoding."
            )
        raise FingerprintMismatchError(
            f"collection {name!r} at {where} was built with other encoder settings: " + "; ".join(diffs) + ". " + fix
        )
