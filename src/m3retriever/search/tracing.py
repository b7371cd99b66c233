"""Optional OpenTelemetry spans of a search, so the pipeline shows in the tracing tools a
user already has.

When the OpenTelemetry API (``opentelemetry-api``, the ``otel`` extra) is installed, each
search is a span ``m3retriever.search`` (attributes: the collection, the number of queries,
``top_k``, whether the branch weights adapt to the query, and the configured weight of each
branch) with child spans ``encode`` (cutting and encoding the queries), ``query`` (the store
calls: each branch's own ranking when the fusion adapts, then the fused one) and one
``rerank`` per query (reranking and building its hits; attributes: the query's index in the
batch, the number of candidates, the weight each branch had in its fusion). The spans go to
whatever tracer provider the application configured; with none, the API's own no-op one.

Without the API nothing is imported and every span is a shared no-op context (one debug log
line says so, once per process). The API is looked for on the first search, not on import.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, ContextManager, Mapping

__all__ = ["span", "tracer", "weight_attributes"]

logger = logging.getLogger(__name__)

_NO_SPAN: ContextManager[Any] = contextlib.nullcontext()
_UNSET: Any = object()
_tracer: Any = _UNSET

Attribute = str | bool | int | float


def tracer() -> Any:
    """The ``m3retriever`` tracer of the OpenTelemetry API, or ``None`` when it is not
    installed (looked for once per process)."""
    global _tracer
    if _tracer is _UNSET:
        try:
            from opentelemetry import trace
        except ImportError as exc:
            logger.debug("no OpenTelemetry spans for searches: %s (pip install 'm3retriever[otel]')", exc)
            _tracer = None
        else:
            from m3retriever import __version__

            _tracer = trace.get_tracer("m3retriever", __version__)
    return _tracer


def span(name: str, attributes: Mapping[str, Attribute] | None = None) -> ContextManager[Any]:
    """A span named ``name``, current inside the ``with`` block (a child of the span current
    where it opens); a no-op without the OpenTelemetry API.

    Args:
        name: The span's name.
        attributes: Its attributes (strings, booleans, numbers).
    """
    t = tracer()
    if t is None:
        return _NO_SPAN
    return t.start_as_current_span(name, attributes=dict(attributes or {}))  # type: ignore[no-any-return]


def weight_attributes(weights: Mapping[str, float], prefix: str = "m3retriever.weight.") -> dict[str, Attribute]:
    """Branch weights as span attributes, one per branch (``m3retriever.weight.dense``...)."""
    return {prefix + name: float(w) for name, w in weights.items()}
