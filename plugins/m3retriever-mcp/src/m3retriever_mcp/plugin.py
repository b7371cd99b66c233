"""Registers the MCP adapter with m3retriever (entry point ``m3retriever: mcp``).

Importing this module is cheap: the MCP SDK is imported only when the factory is called.
"""

from __future__ import annotations

from typing import Any, Callable

from m3retriever import hookimpl


def factory(
    retriever: Any,
    *,
    writes: bool = False,
    description: str | None = None,
    token: str | None = None,
) -> Any:
    """Build the MCP server around ``retriever``.

    Returns:
        A :class:`m3retriever_mcp.M3RetrieverMCP`: ``.server`` is the ``MCPServer``;
        ``.serve(transport="stdio"|"http", host="127.0.0.1", port=8000)`` blocks serving it.
    """
    from m3retriever_mcp.server import create_server

    return create_server(retriever, writes=writes, description=description, token=token)


@hookimpl
def register_adapters(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register the ``"mcp"`` adapter."""
    register("mcp", factory)
