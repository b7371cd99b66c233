"""Build encoders and rerankers by registered name, one warm instance per process."""

from __future__ import annotations

import threading

from m3retriever.branches import EncoderSet
from m3retriever.config.settings import Settings
from m3retriever.encoders.base import Encoder, EncoderOptions
from m3retriever.errors import ConfigError, PluginError
from m3retriever.plugins import encoder_factories, reranker_factories
from m3retriever.rerankers.base import Reranker, RerankerOptions

__all__ = ["get_encoder", "get_reranker", "encoders_for", "reranker_for", "clear_cache"]

LEXICAL_MAX_LENGTH = 10**6
"""``max_length`` given to the lexical encoder: it counts words and never truncates."""

_lock = threading.Lock()
_encoders: dict[tuple[str, EncoderOptions], Encoder] = {}
_rerankers: dict[tuple[str, RerankerOptions], Reranker] = {}


def get_encoder(name: str, options: EncoderOptions | None = None) -> Encoder:
    """Return the shared encoder ``name`` built with ``options`` (created on first call).

    Raises:
        PluginError: if no installed plugin registers ``name``.
    """
    options = options or EncoderOptions()
    key = (name, options)
    with _lock:
        if key not in _encoders:
            factories = encoder_factories()
            if name not in factories:
                raise PluginError(
                    f"no encoder named {name!r}; registered encoders: {sorted(factories)}. "
                    "Pick one of those or install the plugin that provides it."
                )
            _encoders[key] = factories[name](options)
        return _encoders[key]


def get_reranker(name: str, options: RerankerOptions | None = None) -> Reranker:
    """Return the shared reranker ``name`` built with ``options`` (created on first call).

    Raises:
        PluginError: if no installed plugin registers ``name``.
    """
    options = options or RerankerOptions()
    key = (name, options)
    with _lock:
        if key not in _rerankers:
            factories = reranker_factories()
            if name not in factories:
                raise PluginError(
                    f"no reranker named {name!r}; registered rerankers: {sorted(factories)}. "
                    "Pick one of those or install the plugin that provides it."
                )
            _rerankers[key] = factories[name](options)
        return _rerankers[key]


def clear_cache() -> None:
    """Forget the shared instances (their models are freed when no longer referenced)."""
    with _lock:
        _encoders.clear()
        _rerankers.clear()


def _enabled(name: str | None) -> str | None:
    return None if name in (None, "", "none") else name


def encoders_for(c: Settings) -> EncoderSet:
    """The shared encoders the settings in force ask for.

    When the dense and sparse branches name the same encoder and model (BGE-M3), one
    instance serves both, so one forward pass gives both vectors.
    """
    _check_resolved(c)

    dense_name, sparse_name = _enabled(c.dense_encoder), _enabled(c.sparse_encoder)
    # The late-interaction vectors come from the dense encoder (else the sparse one).
    multivector = bool(c.multivector)

    def options(model: str | None, query_instruction: str | None = None, *, mv: bool = False) -> EncoderOptions:
        return EncoderOptions(
            model=model,
            batch_size=c.batch_size,
            max_length=c.max_length,
            device=c.device,
            query_instruction=query_instruction,
            multivector=mv,
        )

    dense_mv = multivector and dense_name is not None
    dense = get_encoder(dense_name, options(c.dense_model, c.query_instruction, mv=dense_mv)) if dense_name else None
    if sparse_name and sparse_name == dense_name and c.sparse_model == c.dense_model:
        sparse = dense
    else:
        sparse_mv = multivector and dense_name is None
        sparse = get_encoder(sparse_name, options(c.sparse_model, mv=sparse_mv)) if sparse_name else None
    lexical_name = _enabled(c.lexical_encoder) if c.bm25 else None
    # Lexical encoders count words and never truncate: no token limit.
    lexical = (
        get_encoder(lexical_name, EncoderOptions(max_length=LEXICAL_MAX_LENGTH)) if lexical_name else None
    )
    dense2_name = _enabled(c.dense2_encoder)
    dense2 = get_encoder(dense2_name, options(c.dense2_model)) if dense2_name else None
    return EncoderSet(dense, sparse, lexical, dims=c.dims, multivector=multivector, dense2=dense2)


def reranker_for(c: Settings) -> Reranker | None:
    """The shared reranker the settings in force ask for, or ``None`` when reranking is off."""
    _check_resolved(c)
    name = _enabled(c.reranker)
    if name is None:
        return None
    max_length = c.rerank_max_length or c.max_length
    return get_reranker(name, RerankerOptions(model=c.reranker_model, device=c.device, max_length=max_length))


def _check_resolved(c: object) -> None:
    if not isinstance(c, Settings):
        raise ConfigError(
            f"components are built from the settings in force, got a {type(c).__name__}: pass "
            "m3retriever.config.resolution.resolve(config)"
        )
