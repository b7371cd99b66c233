"""MCP server for m3retriever: hybrid search as Model Context Protocol tools.

Tools: ``search`` (read-only, structured output with resource links and a cursor), ``fetch`` (a
document or a chunk), ``list_collections``, ``collection_info``, and, only when writes are
enabled, ``ingest`` (with progress notifications) and ``delete``; each takes a ``collection`` of
the served ones (an allow-list fixed at start). Resources: the served collections, each one's
information, and templates for documents and chunks. Run it with ``m3retriever serve-mcp`` or
``python -m m3retriever_mcp``.

Example::

    from m3retriever import Retriever, load_config
    from m3retriever_mcp import create_server

    create_server(Retriever.shared(load_config("m3r.toml"))).serve()  # stdio

Names are imported lazily, so loading the plugin module (``m3retriever_mcp.plugin``) does not
import the MCP SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from m3retriever_mcp.server import INFO_RESOURCE_URI, MAX_TOP_K, HTTPLimits, M3RetrieverMCP, create_server

__all__ = ["M3RetrieverMCP", "create_server", "HTTPLimits", "INFO_RESOURCE_URI", "MAX_TOP_K"]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        from m3retriever_mcp import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
