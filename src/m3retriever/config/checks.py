"""Value checks and type coercion of single settings, used by :mod:`m3retriever.config`.

The range checks of ``SearchConfig``'s numeric fields, the tenant settings' checks, and the
conversion of a TOML or environment value to a field's declared type.
"""

from __future__ import annotations

import math
import numbers
import types
import typing
import unicodedata
from typing import Any, Literal

from m3retriever.errors import ConfigError

__all__ = [
    "MAX_LIMIT",
    "MAX_EXPAND",
    "INT_FIELDS",
    "FLOAT_FIELDS",
    "check_int",
    "check_float",
    "check_tenant",
    "tenant_value_problem",
    "coerce_setting",
]

MAX_LIMIT = 10_000
"""Largest top_k, prefetch_limit and rerank_depth accepted."""

MAX_EXPAND = 20
"""Most neighbouring chunks on each side a hit's context (``expand``) takes."""

# name -> (lowest, highest, may be None); hnsw_ef 0 or None means "the default".
INT_FIELDS = {
    "top_k": (1, MAX_LIMIT, False),
    "prefetch_limit": (1, MAX_LIMIT, True),
    "rerank_depth": (1, MAX_LIMIT, True),
    "rrf_k": (1, 1_000_000, True),
    "hnsw_ef": (0, 100_000, True),
    "max_per_doc": (1, MAX_LIMIT, True),
    "diversity_depth": (1, MAX_LIMIT, True),
    "multivector_depth": (1, MAX_LIMIT, True),
    "expand": (0, MAX_EXPAND, False),
}
# name -> highest (lowest is 0); all may be None.
FLOAT_FIELDS = {
    "dense_weight": 1e6,
    "sparse_weight": 1e6,
    "bm25_weight": 1e6,
    "dense2_weight": 1e6,
    "rerank_weight": 1.0,
    "min_score": 1.0,
    "oversampling": 100.0,
    "mmr": 1.0,
}


def check_int(name: str, value: Any, low: int, high: int, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"search.{name} must be a whole number, got {value!r:.40}")
    number = int(value)
    if not low <= number <= high:
        raise ConfigError(f"search.{name} must be between {low} and {high}, got {number}")
    return number


def check_float(name: str, value: Any, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"search.{name} must be a number, got {value!r:.40}")
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not 0.0 <= out <= high:  # also refuses NaN
        raise ConfigError(f"search.{name} must be between 0 and {high:g}, got {value!r:.40}")
    return out


_RESERVED = ("doc_id", "source", "chunk_index", "text", "metadata", "content_hash")


def check_tenant(tenant_field: Any, tenant: Any) -> None:
    """``tenant_field`` is a metadata key; ``tenant`` a non-blank string that needs it."""
    if tenant_field is not None:
        ok = isinstance(tenant_field, str) and bool(tenant_field) and all(c.isalnum() or c in "_-" for c in tenant_field)
        if not ok or tenant_field in _RESERVED:
            raise ConfigError(
                f"tenant_field must be a top-level metadata key (letters, digits, '_', '-'), got {tenant_field!r}"
            )
    if tenant is None:
        return
    if not isinstance(tenant, str) or not tenant.strip() or len(tenant) > 1024:
        raise ConfigError(f"tenant must be a non-blank string of at most 1,024 characters, got {tenant!r:.60}")
    problem = tenant_value_problem(tenant)
    if problem is not None:
        raise ConfigError(problem)
    if tenant_field is None:
        raise ConfigError(
            f"tenant={tenant!r} needs tenant_field: name the metadata key that holds the tenant "
            "(e.g. tenant_field='tenant')"
        )


def tenant_value_problem(tenant: str) -> str | None:
    """Why ``tenant`` cannot name a tenant (``None``: it can).

    A tenant holds no control character (Unicode category ``Cc``: ``\\x00``-``\\x1f``,
    ``\\x7f``-``\\x9f``). Point ids are derived from ``tenant + "\\x1e" + doc_id + "\\x1f" +
    chunk_index`` (:func:`m3retriever.ingest.point_id`); without a ``\\x1e`` in the tenant the
    first one ends it, so two (tenant, doc id) pairs never share a point id.
    """
    for position, char in enumerate(tenant):
        if unicodedata.category(char) == "Cc":
            return (
                f"tenant {tenant!r:.60} holds the control character {char!r} at position {position}; "
                "a tenant must be printable text (control characters such as '\\x1e' and '\\x1f' "
                "separate the tenant from the document id in point ids): name the tenant without it"
            )
    return None


def coerce_setting(name: str, raw: Any, annotation: Any) -> Any:
    """Convert a TOML/env value to the field's declared type.

    Raises:
        ConfigError: naming ``name`` when the value does not fit.
    """
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, {**typing.__dict__, **globals()})  # noqa: S307 - our own annotations
        except NameError:  # a nested configuration class: its values are built, not coerced
            return raw
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        # Only a real None (TOML has none; code may pass it) means "unset". The string
        # "none" stays a string: for components it means "disable this stage".
        if raw is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce_setting(name, raw, arg)
            except (ConfigError, ValueError, TypeError) as exc:
                errors.append(str(exc))
        raise ConfigError(f"{name}: cannot use {raw!r} ({'; '.join(errors)})")
    if origin is Literal:
        if raw not in args:
            raise ConfigError(f"{name} must be one of {list(args)}, got {raw!r}")
        return raw
    if origin is tuple:
        if isinstance(raw, str):
            raw = [p.strip() for p in raw.split(",") if p.strip()]
        return tuple(raw)
    if annotation is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(raw, str) and raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    if annotation in (int, float):
        if isinstance(raw, bool):
            raise ConfigError(f"{name} must be a number, got {raw!r}")
        try:
            return annotation(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be {annotation.__name__}, got {raw!r}") from None
    if annotation is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{name} must be a string, got {raw!r}")
        return raw
    return raw
