"""A small typed filter language over document metadata.

Build filters from the classes below or from a plain mapping with :func:`parse_filter`::

    Eq("lang", "en") & Range("year", gte=2020) & AnyOf("tag", ["a", "b"])
    parse_filter({"lang": "en", "year": {"gte": 2020}, "tag": {"any": ["a", "b"]}})

Field names refer to user metadata keys; ``doc_id``, ``source`` and ``chunk_index`` refer to
the document's id, its source and the chunk's position. A folder ingest stores ``folders``,
``suffix`` and ``title`` with each document (:mod:`m3retriever.ingest.document_fields`)::

    parse_filter({"folders": "guide/api", "suffix": {"any": [".md", ".html"]}}) Filters are translated to each store's native filter by the store layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Union

from m3retriever.errors import InputError
from m3retriever.validation import RESERVED_FIELDS, check_field, check_finite, check_int64, check_string

__all__ = [
    "Eq",
    "AnyOf",
    "Range",
    "Not",
    "And",
    "Filter",
    "FilterBuilder",
    "parse_filter",
    "payload_key",
    "translate",
]

Scalar = Union[str, int, bool]


def payload_key(field: str) -> str:
    """The payload path of a filter field (user metadata lives under ``metadata.``)."""
    if field in RESERVED_FIELDS:
        return field
    return f"metadata.{field}"


def _check_field(field: object) -> str:
    return check_field(field)


def _check_folder(field: str, value: Scalar) -> None:
    """A ``folders`` value must be written as a folder ingest stores it (``guide/api``)."""
    if field != "folders" or not isinstance(value, str):
        return
    clean = "/".join(p for p in value.split("/") if p not in ("", "."))
    if value != clean or not clean:
        raise InputError(
            f"filter on 'folders': {value!r} is not written as a folder ingest stores folders; write the "
            f"path relative to the ingested folder with '/' between names, no leading './' or '/' and no "
            f"trailing '/' (e.g. {clean or 'guide/api'!r})"
        )


def _check_scalar(field: str, value: object) -> Scalar:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return check_string(value, f"filter on {field!r}: value")
    if isinstance(value, int):
        return check_int64(value, f"filter on {field!r}")
    if isinstance(value, float):
        raise InputError(
            f"filter on {field!r}: equality on a float ({value!r}) is unreliable; "
            f"use Range({field!r}, gte=..., lte=...) instead"
        )
    if not isinstance(value, (str, int, bool)):
        raise InputError(
            f"filter on {field!r}: value {value!r} has type {type(value).__name__}; "
            "equality supports str, int and bool"
        )
    return value


class _Combinable:
    def __and__(self, other: "Filter") -> "And":
        return And((self, other))  # type: ignore[arg-type]

    def __invert__(self) -> "Not":
        return Not(self)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Eq(_Combinable):
    """``field == value``."""

    field: str
    value: Scalar

    def __post_init__(self) -> None:
        _check_field(self.field)
        _check_scalar(self.field, self.value)
        _check_folder(self.field, self.value)


@dataclass(frozen=True)
class AnyOf(_Combinable):
    """``field`` equals one of ``values`` (all str or all int)."""

    field: str
    values: tuple[Scalar, ...]

    def __init__(self, field: str, values: Any) -> None:
        _check_field(field)
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise InputError(f"AnyOf({field!r}, ...) needs a list of values, got {values!r}")
        vals = tuple(_check_scalar(field, v) for v in values)
        for v in vals:
            _check_folder(field, v)
        if not vals:
            raise InputError(f"AnyOf({field!r}, []) matches nothing; pass at least one value")
        kinds = {type(v) for v in vals}
        if not (kinds <= {str} or kinds <= {int}):
            raise InputError(f"AnyOf({field!r}, ...) values must be all strings or all integers")
        object.__setattr__(self, "field", field)
        object.__setattr__(self, "values", vals)


@dataclass(frozen=True)
class Range(_Combinable):
    """Numeric range on ``field``; give at least one bound."""

    field: str
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None

    def __post_init__(self) -> None:
        _check_field(self.field)
        bounds = (self.gte, self.gt, self.lte, self.lt)
        if all(b is None for b in bounds):
            raise InputError(f"Range({self.field!r}) needs at least one of gte, gt, lte, lt")
        for name in ("gte", "gt", "lte", "lt"):
            bound = getattr(self, name)
            if bound is not None:
                object.__setattr__(self, name, check_finite(bound, f"Range({self.field!r}) bound {name}"))


@dataclass(frozen=True)
class Not(_Combinable):
    """Negation of a filter."""

    inner: "Filter"


@dataclass(frozen=True)
class And(_Combinable):
    """All of ``parts`` must hold."""

    parts: tuple["Filter", ...]

    def __and__(self, other: "Filter") -> "And":
        return And(self.parts + (other,))


Filter = Union[Eq, AnyOf, Range, Not, And]

_RANGE_OPS = {"gte", "gt", "lte", "lt"}


def parse_filter(spec: "Filter | Mapping[str, Any] | None") -> "Filter | None":
    """Turn a mapping into a :data:`Filter` (filters pass through unchanged).

    Mapping syntax: ``{"field": value}`` for equality, ``{"field": {"any": [...]}}`` for
    any-of, ``{"field": {"gte": 1, "lt": 5}}`` for ranges, ``{"field": {"not": value}}``
    for inequality. Several keys are combined with AND.

    Raises:
        InputError: naming the offending field and the accepted syntax.
    """
    if spec is None:
        return None
    if isinstance(spec, (Eq, AnyOf, Range, Not, And)):
        return spec
    if not isinstance(spec, Mapping):
        raise InputError(
            f"filter must be a mapping like {{'lang': 'en'}} or a Filter object, got {type(spec).__name__}"
        )
    parts: list[Filter] = []
    for field, cond in spec.items():
        _check_field(field)
        if isinstance(cond, Mapping):
            keys = set(cond)
            if keys == {"any"}:
                parts.append(AnyOf(field, cond["any"]))
            elif keys == {"not"}:
                parts.append(Not(Eq(field, cond["not"])))
            elif keys and keys <= _RANGE_OPS:
                parts.append(Range(field, **{k: cond[k] for k in keys}))
            else:
                raise InputError(
                    f"filter on {field!r}: unknown operators {sorted(map(repr, keys))}; use 'any', 'not' "
                    "or range bounds 'gte', 'gt', 'lte', 'lt'"
                )
        elif isinstance(cond, (list, tuple)):
            parts.append(AnyOf(field, cond))
        else:
            parts.append(Eq(field, cond))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


class FilterBuilder(Protocol):
    """Constructors of a store's native filter objects (see :func:`translate`)."""

    def eq(self, key: str, value: Scalar) -> Any: ...

    def any_of(self, key: str, values: list[Scalar]) -> Any: ...

    def range(self, key: str, gte: float | None, gt: float | None, lte: float | None, lt: float | None) -> Any: ...

    def must(self, conditions: list[Any]) -> Any: ...

    def must_not(self, conditions: list[Any]) -> Any: ...


def translate(flt: "Filter | None", build: FilterBuilder) -> Any:
    """Translate a filter into a store's native filter with ``build``'s constructors.

    Field names become payload paths (:func:`payload_key`); the result is always a
    ``must``/``must_not`` filter object (``None`` for no filter).
    """
    if flt is None:
        return None

    def cond(f: Filter) -> Any:
        if isinstance(f, Eq):
            return build.eq(payload_key(f.field), f.value)
        if isinstance(f, AnyOf):
            return build.any_of(payload_key(f.field), list(f.values))
        if isinstance(f, Range):
            return build.range(payload_key(f.field), f.gte, f.gt, f.lte, f.lt)
        if isinstance(f, Not):
            return build.must_not([cond(f.inner)])
        if isinstance(f, And):
            return build.must([cond(p) for p in f.parts])
        raise TypeError(f"unknown filter {f!r}")

    if isinstance(flt, (Not, And)):
        return cond(flt)
    return build.must([cond(flt)])
