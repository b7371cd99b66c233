"""Build encoders and rerankers by registered name, one warm instance per process."""

from __future__ import annotations

import threading

from m3retriever.encoders.base import Encoder, EncoderOptions
from m3retriever.errors import PluginError
from m3retriever.plugins import encoder_factories, reranker_factories
from m3retriever.rerankers.base import Reranker, RerankerOptions

__all__ = ["get_encoder", "get_reranker", "clear_cache"]

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
