"""The settings in force: a configuration after :func:`~m3retriever.config.resolution.resolve`.

:class:`Settings` and :class:`SearchSettings` are the resolved forms of
:class:`~m3retriever.config.Config` and :class:`~m3retriever.config.SearchConfig`. They have the
same fields, but every setting that resolution fills (the profile's value, else the field's own
default) is typed and checked as set, so the code that reads them (encoders, reranker, search)
never meets an unset one. Only :func:`~m3retriever.config.resolution.resolve` makes them;
:data:`FILLED` lists the fields narrowed here, and a test keeps it equal to the fields that have
an ``otherwise`` default.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from m3retriever.config import Config, SearchConfig
from m3retriever.errors import ConfigError

__all__ = ["FILLED", "SearchSettings", "Settings"]


@dataclass(frozen=True, kw_only=True)
class SearchSettings(SearchConfig):
    """:class:`~m3retriever.config.SearchConfig` with every default filled in."""

    prefetch_limit: int
    rerank_depth: int
    fusion: Literal["rrf", "zscore", "dbsf"]
    rrf_k: int
    dense_weight: float
    sparse_weight: float
    bm25_weight: float
    dense2_weight: float
    rerank_weight: float
    hnsw_ef: int
    oversampling: float
    rescore: bool
    multivector_rescore: bool
    multivector_depth: int
    adaptive: bool
    rerank_window: Literal["first", "match", "maxp"]
    confidence_slope: float
    confidence_bias: float

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_filled(self, FILLED_SEARCH, "search.")


@dataclass(frozen=True, kw_only=True)
class Settings(Config):
    """:class:`~m3retriever.config.Config` with every default filled in: the profile named,
    the components named (``"none"`` when off) and the search settings resolved."""

    profile: str
    dense_encoder: str
    sparse_encoder: str
    bm25: bool
    lexical_encoder: str
    reranker: str
    rerank_max_length: int
    quantization: Literal["none", "scalar", "binary", "turbo"]
    vectors_on_disk: bool
    payload_on_disk: bool
    hnsw_m: int
    hnsw_ef_construct: int
    multivector: bool
    chunk_headers: Literal["off", "structured", "all"]
    search: SearchSettings

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.search, SearchSettings):
            raise ConfigError("Settings.search must be resolved search settings: make Settings with resolve()")
        _check_filled(self, FILLED_TOP, "")

    @classmethod
    def of(cls, config: Config) -> "Settings":
        """``config`` (every filled setting set) as :class:`Settings`."""
        if isinstance(config, Settings):
            return config
        search = SearchSettings(**_values(config.search))
        return cls(**{**_values(config), "search": search})


def _values(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _check_filled(obj: Any, names: tuple[str, ...], prefix: str) -> None:
    unset = [prefix + n for n in names if getattr(obj, n) is None]
    if unset:
        raise ConfigError(f"settings {unset} are unset: settings in force come from resolve(), which fills them")


def _narrowed(cls: type, base: type) -> tuple[str, ...]:
    return tuple(n for n in cls.__annotations__ if n in {f.name for f in fields(base)} and n != "search")


FILLED_SEARCH = _narrowed(SearchSettings, SearchConfig)
FILLED_TOP = _narrowed(Settings, Config)
FILLED = (*FILLED_TOP, *(f"search.{n}" for n in FILLED_SEARCH))
"""The settings resolution always fills (``search.`` for search settings)."""
