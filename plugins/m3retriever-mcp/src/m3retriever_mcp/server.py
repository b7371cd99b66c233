"""The MCP server: m3retriever's search (and optionally ingest/delete) as MCP tools.

Built on the MCP Python SDK 2.x (``mcp.server.mcpserver.MCPServer``).

Every failed call reaches the agent as a tool result (``isError``) it can act on: refused
arguments list each problem and the fix (m3retriever's own checks run during argument
validation), library errors carry their message, and a crash names its exception type (the
traceback is logged here). Searches run side by side in worker threads; writes run one at a time.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, Callable, Literal, Mapping, Sequence, TypeVar

import anyio
import anyio.to_thread
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from m3retriever import ConfigError, Retriever
from m3retriever_mcp.cursor import Cursors
from m3retriever_mcp.guarded import GuardedServer, StaticTokenVerifier
from m3retriever_mcp.httplimits import HTTPLimits
from m3retriever_mcp.models import CollectionInfo
from m3retriever_mcp.reading import register_collection_resources, register_fetch, register_list_collections
from m3retriever_mcp.searching import register_search
from m3retriever_mcp.served import Served, ServedCollections, describe
from m3retriever_mcp.tools import (
    INFO_RESOURCE_URI,
    MAX_TOP_K,
    about_collections,
    register_collection_info,
    register_delete,
    register_info_resource,
    register_ingest,
)

__all__ = ["M3RetrieverMCP", "create_server", "HTTPLimits", "MAX_TOP_K", "INFO_RESOURCE_URI", "READ_CONCURRENCY"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

READ_CONCURRENCY = min(32, (os.cpu_count() or 1) + 4)
"""Searches (and info reads) run at once in worker threads; more wait for a free one. Writes
(ingest, delete) have a thread of their own, one at a time, so they never take a search's."""
SERVER_NAME = "m3retriever"
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class M3RetrieverMCP:
    """An MCP server wrapping one :class:`~m3retriever.Retriever`, or several (one per collection).

    Args:
        retriever: The retriever of the default collection (usually ``Retriever.shared(config)``).
            The caller owns it: :meth:`serve` does not close it.
        writes: Also register the ``ingest`` and ``delete`` tools (off by default); for every
            served collection alike.
        description: What the default collection holds; appended to the tool descriptions and
            the server instructions so an agent knows when to search it.
        collections: Further collections to serve (their retrievers, owned by the caller; open
            them over ``retriever.store`` when they are in the same location, see
            :func:`m3retriever_mcp.served.open_collections`). With ``retriever``'s, they are the
            allow-list a tool's ``collection`` argument picks from.
        descriptions: What each collection holds, by name (``description`` is the default's).
        token: A bearer token that HTTP clients must send (``Authorization: Bearer <token>``);
            requests without it get 401. Not used over stdio.
        http_limits: Read timeouts (request head, body) and connection cap of the HTTP
            server (default: :class:`~m3retriever_mcp.httplimits.HTTPLimits`: 10 s, 30 s, 200).
            Not used over stdio.

    Attributes:
        server: The ``mcp.server.mcpserver.MCPServer``.
    """

    def __init__(
        self,
        retriever: Retriever,
        *,
        writes: bool = False,
        description: str | None = None,
        token: str | None = None,
        http_limits: HTTPLimits | None = None,
        collections: Sequence[Retriever] = (),
        descriptions: Mapping[str, str] | None = None,
    ) -> None:
        if token is not None and not token.strip():
            raise ConfigError("the MCP bearer token is empty; pass a non-empty --token or none")
        self.retriever = retriever
        self.writes = writes
        self.collections = ServedCollections(describe([retriever, *collections], description, descriptions or {}))
        self.description = self.collections.default.description
        self.cursors = Cursors()
        self.token = token
        auth_kwargs: dict[str, Any] = {}
        if token is not None:
            # The SDK's bearer middleware with a static verifier. With no resource_server_url
            # and no auth server provider, issuer_url is required by the settings model but
            # not used (no OAuth metadata routes are mounted).
            auth_kwargs = dict(
                token_verifier=StaticTokenVerifier(token),
                auth=AuthSettings(issuer_url="http://127.0.0.1", resource_server_url=None),
            )
        self._reads = anyio.CapacityLimiter(READ_CONCURRENCY)
        self._writes = anyio.CapacityLimiter(1)
        self.server: MCPServer = GuardedServer(
            SERVER_NAME,
            title="m3retriever",
            instructions=self._instructions(),
            version=_version(),
            log_level="WARNING",
            token=token,
            http_limits=http_limits,
            **auth_kwargs,
        )
        self._register()

    # -- threads ---------------------------------------------------------------------
    async def _read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a read (search, info) in a worker thread; reads run side by side."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self._reads)

    async def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a write (ingest, delete) in a worker thread, one write at a time.

        Two writes at once could interleave on one document (each sees it absent, both write
        their chunks, neither removes the other's), and would take threads searches need.
        """
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self._writes)

    # -- descriptions ----------------------------------------------------------------
    def _instructions(self) -> str:
        served = self.collections
        if len(served) == 1:
            text = (
                f"Search the m3retriever collection '{served.default.name}' with the `search` tool "
                "and read a hit's whole document with `fetch`; `collection_info` tells how many "
                "documents it holds and which models it uses."
            )
        else:
            text = (
                f"This server serves {len(served)} m3retriever collections: `list_collections` names "
                "them; `search` (argument `collection`) finds passages, `fetch` reads a hit's whole "
                "document, `collection_info` gives counts and models."
            )
        if self.writes:
            text += " `ingest` adds or replaces documents; `delete` removes them."
        return text + about_collections(served)

    # -- tools -----------------------------------------------------------------------
    def _register(self) -> None:
        """Register the read tools and the resources; the write tools only with writes."""
        srv, served = self.server, self.collections
        register_search(srv, served, self._read, self.cursors)
        register_fetch(srv, served, self._read)
        register_list_collections(srv, served, self._read, self._info, self.writes)
        register_collection_info(srv, served, self._read, self._info)
        register_info_resource(srv, served.default, self._read, self._info)
        register_collection_resources(srv, served, self._read, self._info, self.writes)
        if self.writes:
            register_ingest(srv, served, self._write)
            register_delete(srv, served, self._write)

    def _info(self, served: Served) -> CollectionInfo:
        info = dict(served.retriever.info())
        info.pop("location", None)  # a local path is of no use to a client
        info.pop("collection", None)
        return CollectionInfo(collection=served.name, description=served.description, **info)

    # -- serving ---------------------------------------------------------------------
    def _check_transport(self, transport: str, host: str) -> str:
        if transport == "stdio":
            return "stdio"
        if transport in ("http", "streamable-http"):
            if self.token is None and host not in _LOCAL_HOSTS:
                logger.warning(
                    "serving MCP over HTTP on %s without a token: anyone who can reach it can "
                    "search%s; pass a token",
                    host,
                    " and modify the collection" if self.writes else "",
                )
            return "http"
        raise ConfigError(f"unknown MCP transport {transport!r}; use 'stdio' or 'http'")

    def serve(
        self, transport: Literal["stdio", "http"] | str = "stdio", host: str = "127.0.0.1", port: int = 8000
    ) -> None:
        """Serve until the client disconnects (stdio) or the process is interrupted (HTTP).

        Args:
            transport: ``"stdio"`` or ``"http"`` (streamable HTTP at ``http://host:port/mcp``).
            host: Interface to bind for HTTP (default: loopback only).
            port: TCP port for HTTP.
        """
        if self._check_transport(transport, host) == "stdio":
            self.server.run("stdio")
        else:
            self.server.run("streamable-http", host=host, port=port)

    async def serve_async(
        self, transport: Literal["stdio", "http"] | str = "stdio", host: str = "127.0.0.1", port: int = 8000
    ) -> None:
        """:meth:`serve` inside a running event loop."""
        if self._check_transport(transport, host) == "stdio":
            await self.server.run_stdio_async()
        else:
            await self.server.run_streamable_http_async(host=host, port=port)


def create_server(
    retriever: Retriever,
    *,
    writes: bool = False,
    description: str | None = None,
    token: str | None = None,
    http_limits: HTTPLimits | None = None,
    collections: Sequence[Retriever] = (),
    descriptions: Mapping[str, str] | None = None,
) -> M3RetrieverMCP:
    """The adapter factory registered as ``"mcp"``: see :class:`M3RetrieverMCP`."""
    return M3RetrieverMCP(
        retriever,
        writes=writes,
        description=description,
        token=token,
        http_limits=http_limits,
        collections=collections,
        descriptions=descriptions,
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("m3retriever-mcp")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"
