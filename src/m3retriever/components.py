"""Build encoders and rerankers by registered name, one warm instance per process."""

from __future__ import annotations

import threading

from typing import TYPE_CHECKING

from m3retriever.branches import EncoderSet
from m3retriever.encoders.base import Encoder, EncoderOptions
from m3retriever.errors import PluginError
from m3retriever.plugins import encoder_factories, reranker_factories
from m3retriever.rerankers.base import Reranker, RerankerOptions

if TYPE_CHECKING:
    from m3retriever.config import Config

__all__ = ["get_encoder", "get_reranker", "encoders_for", "reranker_for", "clear_cache"]

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


def _pick(override: str | None, default: str | None) -> str | None:
    value = override if override is not None else default
    return None if value in (None, "", "none") else value


def encoders_for(config: "Config") -> EncoderSet:
    """The shared encoders a configuration asks for (profile defaults, then overrides).

    When the dense and sparse branches name the same encoder and model (BGE-M3), one
    instance serves both, so one forward pass gives both vectors.
    """
    c = config
    profile = c.profile_obj

    def options(model: str | None, query_instruction: str | None = None) -> EncoderOptions:
        return EncoderOptions(
            model=model,
            batch_size=c.batch_size,
            max_length=c.max_length,
            device=c.device,
            query_instruction=query_instruction,
        )

    dense_name = _pick(c.dense_encoder, profile.dense_encoder)
    sparse_name = _pick(c.sparse_encoder, profile.sparse_encoder)
    dense_model = c.dense_model or (profile.dense_model if c.dense_encoder is None else None)
    sparse_model: str | None
    if c.sparse_model:
        sparse_model = c.sparse_model
    elif sparse_name is not None and sparse_name == dense_name:
        sparse_model = dense_model  # e.g. a local BGE-M3 copy serves both branches
    else:
        sparse_model = profile.sparse_model if c.sparse_encoder is None else None
    instruction = c.query_instruction
    if instruction is None and c.dense_encoder is None:
        instruction = profile.query_instruction
    dense = get_encoder(dense_name, options(dense_model, instruction)) if dense_name else None
    if sparse_name and sparse_name == dense_name and sparse_model == dense_model:
        sparse = dense
    else:
        sparse = get_encoder(sparse_name, options(sparse_model)) if sparse_name else None
    use_bm25 = profile.bm25 if c.bm25 is None else c.bm25
    bm25 = get_encoder("bm25", EncoderOptions(max_length=10**6)) if use_bm25 else None
    return EncoderSet(dense, sparse, bm25, dims=c.dims)


def reranker_for(config: "Config") -> Reranker | None:
    """The shared reranker a configuration asks for, or ``None`` when reranking is off."""
    c = config
    profile = c.profile_obj
    name = _pick(c.reranker, profile.reranker)
    if name is None:
        return None
    model = c.reranker_model or (profile.reranker_model if c.reranker is None else None)
    max_length = c.rerank_max_length or profile.rerank_max_length or c.max_length
    return get_reranker(name, RerankerOptions(model=model, device=c.device, max_length=max_length))
