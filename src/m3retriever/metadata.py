"""Turn a framework document's metadata into m3retriever metadata (JSON only); shared by the
LlamaIndex and LangChain adapters.

The rule, applied to each top-level key:

* keys must follow :mod:`m3retriever.validation`'s key rule (letters, digits, ``_``, ``-``:
  the keys filters can address); other keys are dropped;
* ``doc_id``, ``source``, ``chunk_index`` and keys starting with ``m3r_`` are the fields the
  adapters *add* to retrieved documents; they are taken out (``doc_id`` and ``source`` are
  used as the document's id and source where the adapter says so), so that re-ingesting
  retrieved documents does not store stale scores;
* a value is kept only if :func:`m3retriever.validation.check_metadata` accepts it (JSON
  only, 64-bit integers, finite floats, valid keys at every depth, bounded depth); tuples
  become lists. Anything else (``datetime``, ``Path``, objects, ``NaN``, bytes...) drops the
  whole key, and the dropped keys are logged at WARNING level.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from m3retriever.errors import InputError
from m3retriever.types import Hit
from m3retriever.validation import check_metadata, is_valid_key

__all__ = [
    "RESERVED_KEYS",
    "RESERVED_PREFIX",
    "SCORES_KEY",
    "CONFIDENCE_KEY",
    "MATCHED_TERMS_KEY",
    "clean_metadata",
    "hit_metadata",
]

logger = logging.getLogger(__name__)

RESERVED_KEYS = frozenset({"doc_id", "source", "chunk_index"})
RESERVED_PREFIX = "m3r_"

SCORES_KEY = "m3r_scores"
"""Metadata key of the per-stage scores (:meth:`m3retriever.StageScores.as_dict`)."""

MATCHED_TERMS_KEY = "m3r_matched_terms"
"""Metadata key of the query's words found in the chunk (``Hit.matched_terms``)."""

CONFIDENCE_KEY = "m3r_confidence"
"""Metadata key of the hit's calibrated confidence (``Hit.confidence``; absent when no reranker
read the hit)."""

def clean_metadata(metadata: Mapping[str, Any] | None, *, where: str = "document") -> dict[str, Any]:
    """Apply the module's rule to ``metadata``; returns a new dict."""
    out: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in (metadata or {}).items():
        if not is_valid_key(key):
            dropped.append(repr(key))
            continue
        if key in RESERVED_KEYS or key.startswith(RESERVED_PREFIX):
            continue
        try:
            out[key] = check_metadata({key: value}, where)[key]
        except InputError:
            dropped.append(f"{key!r} ({type(value).__name__})")
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
    ``final`` included) and, when known, ``m3r_confidence`` (how likely the hit is relevant,
    in [0, 1]) and ``m3r_matched_terms``."""
    metadata: dict[str, Any] = dict(hit.metadata)
    metadata.update(doc_id=hit.doc_id, source=hit.source, chunk_index=hit.chunk_index)
    metadata[SCORES_KEY] = hit.scores.as_dict()
    if hit.confidence is not None:
        metadata[CONFIDENCE_KEY] = hit.confidence
    if hit.matched_terms:
        metadata[MATCHED_TERMS_KEY] = list(hit.matched_terms)
    return metadata
