"""The ``m3retriever`` plugin module of m3retriever-langchain.

Registered through the ``m3retriever`` entry-point group like any third-party plugin. Importing
it is cheap: LangChain is imported only when the factory is called.
"""

from __future__ import annotations

from typing import Any, Callable

from m3retriever.plugin import hookimpl

__all__ = ["register_adapters", "make_langchain_retriever"]


def make_langchain_retriever(retriever: Any, **options: Any) -> Any:
    """Adapter factory: wrap ``retriever`` in an :class:`M3RetrieverLangChain`.

    ``options`` are the adapter's fields (``k``, ``filter``, ``search_options``, ``tags``...).
    """
    from m3retriever_langchain.retriever import M3RetrieverLangChain

    return M3RetrieverLangChain(retriever=retriever, **options)


@hookimpl
def register_adapters(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register the ``"langchain"`` adapter."""
    register("langchain", make_langchain_retriever)
