"""Turn a framework document's metadata into m3retriever metadata (JSON only); shared by the
LlamaIndex and LangChain adapters.

The rule, applied to each top-level key:

* keys must be non-empty strings without ``.`` (m3retriever filters address nested fields
  with dots); other keys are dropped;
* ``doc_id``, ``source``, ``chunk_index`` and keys starting with ``m3r_`` are the fields the
  adapters *add* to retrieved documents; they are taken out (``doc_id`` and ``source`` are
  used as the document's id and source where the adapter says so), so that re-ingesting
  retrieved documents does not store stale scores;
* a value is kept only if it is entirely JSON: ``str``, ``bool``, ``int``, finite ``float``,
  ``None``, or a list/tuple/dict (string keys) made only of such values, at any depth;
  tuples become lists. Anything else (``datetime``, ``Path``, objects, ``NaN``, bytes...)
  drops the whole key, and the dropped keys are logged at WARNING level.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping

from m3retriever.types import Hit

__all__ = [
    "RESERVED_KEYS",
    "RESERVED_PREFIX",
    "SCORES_KEY",
    "MATCHED_TERMS_KEY",
    "clean_metadata",
    "json_value",
    "hit_metadata",
]

logger = logging.getLogger(__name__)

RESERVED_KEYS = frozenset({"doc_id", "source", "chunk_index"})
RESERVED_PREFIX = "m3r_"

SCORES_KEY = "m3r_scores"
"""Metadata key of the per-stage scores (:meth:`m3retriever.StageScores.as_dict`)."""

MATCHED_TERMS_KEY = "m3r_matched_terms"
"""Metadata key of the query terms that matched the chunk's sparse vector."""

_MISSING = object()


def json_value(value: Any) -> Any:
    """``value`` as plain JSON data, or a sentinel (``_MISSING``) if any part is not JSON."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _MISSING
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            item = json_value(item)
            if item is _MISSING:
                return _MISSING
            out.append(item)
        return out
    if isinstance(value, Mapping):
        obj = {}
        for key, item in value.items():
            if not isinstance(key, str):
                return _MISSING
            item = json_value(item)
            if item is _MISSING:
                return _MISSING
            obj[key] = item
        return obj
    return _MISSING


def clean_metadata(metadata: Mapping[str, Any] | None, *, where: str = "document") -> dict[str, Any]:
    """Apply the module's rule to ``metadata``; returns a new dict."""
    out: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not key or "." in key:
            dropped.append(repr(key))
            continue
        if key in RESERVED_KEYS or key.startswith(RESERVED_PREFIX):
            continue
        clean = json_value(value)
        if clean is _MISSING:
            dropped.append(f"{key!r} ({type(value).__name__})")
            continue
        out[key] = clean
    if dropped:
        logger.warning(
            "%s: dropped metadata keys that are not JSON or not valid field names: %s",
            where,
            ", ".join(dropped),
        )
    return out


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """The flat metadata adapters put on a retrieved document: the user metadata plus
    ``doc_id``, ``source``, ``chunk_index``, ``m3r_scores`` (every stage's score and rank,
    ``final`` included) and, when known, ``m3r_matched_terms``."""
    metadata: dict[str, Any] = dict(hit.metadata)
    metadata.update(doc_id=hit.doc_id, source=hit.source, chunk_index=hit.chunk_index)
    metadata[SCORES_KEY] = hit.scores.as_dict()
    if hit.matched_terms:
        metadata[MATCHED_TERMS_KEY] = list(hit.matched_terms)
    return metadata
