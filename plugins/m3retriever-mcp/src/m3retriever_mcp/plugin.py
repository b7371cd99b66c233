"""Registers the MCP adapter with m3retriever (entry point ``m3retriever: mcp``).

Importing this module is cheap: the MCP SDK is imported only when the factory is called.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from m3retriever.plugin import hookimpl


def factory(
    retriever: Any,
    *,
    writes: bool = False,
    description: str | None = None,
    token: str | None = None,
    header_timeout: float = 10.0,
    body_timeout: float = 30.0,
    max_connections: int | None = 200,
    collections: Sequence[Any] = (),
    descriptions: Mapping[str, str] | None = None,
) -> Any:
    """Build the MCP server around ``retriever``.

    ``header_timeout``, ``body_timeout`` and ``max_connections`` are the HTTP server's limits
    (:class:`m3retriever_mcp.HTTPLimits`; ``max_connections`` ``None``: no cap). ``collections``
    are further retrievers to serve (one per collection; with ``retriever``'s, the allow-list),
    ``descriptions`` what each collection holds, by name.

    Returns:
        A :class:`m3retriever_mcp.M3RetrieverMCP`: ``.server`` is the ``MCPServer``;
        ``.serve(transport="stdio"|"http", host="127.0.0.1", port=8000)`` blocks serving it.
    """
    from m3retriever_mcp.httplimits import HTTPLimits
    from m3retriever_mcp.server import create_server

    limits = HTTPLimits(header_timeout, body_timeout, max_connections)
    return create_server(
        retriever,
        writes=writes,
        description=description,
        token=token,
        http_limits=limits,
        collections=collections,
        descriptions=descriptions,
    )


@hookimpl
def register_adapters(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register the ``"mcp"`` adapter."""
    register("mcp", factory)
