"""LlamaIndex adapter for m3retriever.

``M3RetrieverLlamaIndex`` is a LlamaIndex ``BaseRetriever`` over an m3retriever
``Retriever``; ``ingest_llamaindex`` ingests LlamaIndex ``Document`` objects and nodes.
The adapter is also registered as the ``"llamaindex"`` adapter of the ``m3retriever``
plugin group: ``m3retriever.plugins.get_adapter("llamaindex", retriever, top_k=5)``.

Names are imported lazily, so loading the plugin module does not import LlamaIndex.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "M3RetrieverLlamaIndex",
    "ingest_llamaindex",
    "aingest_llamaindex",
    "hit_to_node",
    "stored_to_document",
    "to_m3_document",
    "SCORES_KEY",
    "MATCHED_TERMS_KEY",
    "REF_DOC_ID_KEY",
    "CONTEXT_KEY",
    "CHUNKS_KEY",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        from m3retriever_llamaindex import retriever

        return getattr(retriever, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
