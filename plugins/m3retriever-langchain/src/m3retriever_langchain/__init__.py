"""LangChain adapter for m3retriever.

``M3RetrieverLangChain`` is a LangChain ``BaseRetriever`` over an m3retriever ``Retriever``;
``ingest_langchain`` ingests LangChain ``Document`` objects. The adapter is also registered
as the ``"langchain"`` adapter of the ``m3retriever`` plugin group:
``m3retriever.plugins.get_adapter("langchain", retriever, k=5)``.

Names are imported lazily, so loading the plugin module does not import LangChain.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "M3RetrieverLangChain",
    "ingest_langchain",
    "aingest_langchain",
    "hit_to_document",
    "stored_to_document",
    "to_m3_document",
    "SCORES_KEY",
    "MATCHED_TERMS_KEY",
    "CONTEXT_KEY",
    "CHUNKS_KEY",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        from m3retriever_langchain import retriever

        return getattr(retriever, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
