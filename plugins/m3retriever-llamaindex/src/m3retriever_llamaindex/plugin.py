"""The ``m3retriever`` plugin module of m3retriever-llamaindex.

Registered through the ``m3retriever`` entry-point group like any third-party plugin. Importing
it is cheap: LlamaIndex is imported only when the factory is called.
"""

from __future__ import annotations

from typing import Any, Callable

from m3retriever.plugin import hookimpl

__all__ = ["register_adapters", "make_llamaindex_retriever"]


def make_llamaindex_retriever(retriever: Any, **options: Any) -> Any:
    """Adapter factory: wrap ``retriever`` in an :class:`M3RetrieverLlamaIndex`.

    ``options`` are the adapter's keyword arguments (``top_k``, ``filter``,
    ``search_options``, ``callback_manager``, ``verbose``).
    """
    from m3retriever_llamaindex.retriever import M3RetrieverLlamaIndex

    return M3RetrieverLlamaIndex(retriever, **options)


@hookimpl
def register_adapters(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register the ``"llamaindex"`` adapter."""
    register("llamaindex", make_llamaindex_retriever)
