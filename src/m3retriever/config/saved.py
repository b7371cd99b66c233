"""Search defaults a collection keeps with its fingerprint (what ``m3retriever tune --save``
writes), checked as :class:`~m3retriever.config.SearchConfig` and
:class:`~m3retriever.config.Config` check them.

Precedence, applied by :func:`m3retriever.config.resolution.resolve`: a value the user set (in the
configuration or for one call) > the collection's own > the profile's > the field's default.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from typing import Any, Mapping

from m3retriever.config import Config, SearchConfig, coerce_setting
from m3retriever.errors import ConfigError
from m3retriever.store.kept import search_defaults
from m3retriever.store.schema import Store

__all__ = ["SAVABLE", "TUNED", "as_values", "check_saved", "load_saved", "parse_saved"]

logger = logging.getLogger(__name__)

TUNED = (
    "fusion",
    "rrf_k",
    "dense_weight",
    "sparse_weight",
    "bm25_weight",
    "prefetch_limit",
    "rerank_depth",
    "rerank_weight",
)
"""The search defaults ``tune --save`` decides (it keeps the others a collection has)."""
SEARCH_SAVABLE = (*TUNED, "hnsw_ef", "oversampling", "rescore", "adaptive", "rerank_window", "confidence_slope", "confidence_bias")
SAVABLE = (*SEARCH_SAVABLE, "query_instruction")
"""The settings a collection can keep as its own defaults."""


def check_saved(collection: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Check search defaults read from, or about to be saved with, a collection.

    Args:
        collection: The collection's name (for the error message).
        values: ``{setting: value}``; ``None`` values are dropped.

    Returns:
        The values, converted to the settings' types.

    Raises:
        ConfigError: naming the collection and the setting, for an unknown setting or a value
            of the wrong type or range.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"collection {collection!r}: its saved search defaults are not a mapping "
            f"({values!r:.60}); clear them with `m3retriever collection defaults clear` and save them again"
        )
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        where = f"collection {collection!r}: saved search default {key!r}"
        fix = f"; remove it with `m3retriever collection defaults clear {key}` (all of them: `m3retriever collection defaults clear`), then save again"
        if key not in SAVABLE:
            raise ConfigError(f"{where} is not a setting a collection can keep (it can keep {list(SAVABLE)}){fix}")
        try:
            if key == "query_instruction":
                f = next(f for f in fields(Config) if f.name == key)
                checked = coerce_setting(key, value, f.type)
            else:
                # the same type and range checks as a SearchConfig value
                checked = getattr(SearchConfig(**{key: value}), key)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}{fix}") from None
        if checked is not None:  # hnsw_ef 0 means the default: nothing to keep
            out[key] = checked
    return out


def parse_saved(collection: str, raw: Mapping[str, str]) -> dict[str, Any]:
    """Convert ``{setting: text}`` (as given on a command line) to the settings' types, as
    ``M3R_*`` variables are converted, then check them (:func:`check_saved`).

    Raises:
        ConfigError: naming the setting, for an unknown setting or a value that does not fit.
    """
    known = {f.name: f for f in fields(SearchConfig) if f.name in SEARCH_SAVABLE}
    known.update({f.name: f for f in fields(Config) if f.name == "query_instruction"})
    out: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in known:
            raise ConfigError(f"{key!r} is not a setting a collection can keep; it can keep {list(SAVABLE)}")
        out[key] = coerce_setting(key, text, known[key].type)
    check_saved(collection, out)
    return out


def load_saved(store: Store, collection: str) -> dict[str, Any]:
    """The checked search defaults ``collection`` keeps (empty when it keeps none).

    Raises:
        ConfigError: for a corrupted or hand-edited value (see :func:`check_saved`).
    """
    return check_saved(collection, search_defaults(store, collection))


def as_values(settings: SearchConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The savable settings of a :class:`SearchConfig` (its set ones) or a mapping (as given)."""
    if isinstance(settings, SearchConfig):
        return {k: getattr(settings, k) for k in SEARCH_SAVABLE if getattr(settings, k) is not None}
    if not isinstance(settings, Mapping):
        raise ConfigError(
            f"search defaults must be a SearchConfig or a mapping of settings, got {type(settings).__name__}"
        )
    return dict(settings)
