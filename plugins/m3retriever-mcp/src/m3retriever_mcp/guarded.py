"""The MCP server class and its bearer-token check: failed tool calls always reach the agent as
readable isError results, and the transports answer messages too deep for the SDK's parser."""

from __future__ import annotations

import hmac
import logging
from typing import Any, Callable, cast

from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp.server.stdio import stdio_server
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp_types import Icon, ToolAnnotations
from pydantic import ConfigDict, ValidationError

from m3retriever_mcp.httplimits import HTTPLimits, timed_protocol
from m3retriever_mcp.messages import internal_error_message, validation_message
from m3retriever_mcp.transport import DeepJSONMiddleware, DeepJSONReadStream

__all__ = ["GuardedServer", "StaticTokenVerifier"]

logger = logging.getLogger(__name__)


class StaticTokenVerifier:
    """Accepts exactly one bearer token (compared in constant time)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token=token, client_id="m3retriever-mcp", scopes=[])
        return None


def close_arguments(tool: Tool) -> None:
    """Make ``tool`` refuse arguments it does not declare.

    The SDK builds each tool's argument model from the function's signature and lets unknown
    arguments through, dropped without a word: a ``delete`` given ``"tenant": "globex"`` ran as if
    the caller had not asked for another tenant. The model is replaced by a subclass with
    ``extra="forbid"``, so the published ``inputSchema`` says ``additionalProperties: false`` and
    validation refuses an unknown argument (the schema and the check come from one model).
    """
    model = tool.fn_metadata.arg_model
    if model.model_config.get("extra") == "forbid":
        return
    namespace = {"model_config": ConfigDict(extra="forbid"), "__module__": model.__module__, "__doc__": model.__doc__}
    closed = cast("type[ArgModelBase]", type(model.__name__, (model,), namespace))
    tool.fn_metadata.arg_model = closed
    tool.parameters = closed.model_json_schema(by_alias=True)


class GuardedServer(MCPServer):
    """``MCPServer`` whose failed tool calls always reach the agent as readable isError results,
    and whose transports answer messages too deep for the SDK's parser (see ``transport``).

    Args:
        *args: ``MCPServer``'s arguments.
        token: The bearer token HTTP clients send, if any.
        http_limits: The HTTP server's read timeouts and connection cap (defaults if ``None``).
        **kwargs: ``MCPServer``'s keyword arguments.
    """

    def __init__(
        self, *args: Any, token: str | None = None, http_limits: HTTPLimits | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._bearer = token
        self.http_limits = http_limits or HTTPLimits()

    def add_tool(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        structured_output: bool | None = None,
    ) -> None:
        """``MCPServer.add_tool``, the tool then closed to unknown arguments (:func:`close_arguments`)."""
        super().add_tool(
            fn,
            name=name,
            title=title,
            description=description,
            annotations=annotations,
            icons=icons,
            meta=meta,
            structured_output=structured_output,
        )
        tool = self._tool_manager.get_tool(name or fn.__name__)
        if tool is not None:
            close_arguments(tool)

    def _input_schema(self, name: str) -> dict[str, Any] | None:
        tool = self._tool_manager.get_tool(name)
        return tool.parameters if tool is not None else None

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        """``MCPServer.call_tool`` with the agent-facing messages of :mod:`.messages`.

        Raises:
            ToolError: refused arguments (one line per problem, then the fix), a deliberate
                tool error (unchanged), or a crash (logged here with its traceback; the agent
                gets its exception type).
        """
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:
            logger.exception("tool %r raised an unexpected exception", name)
            raise ToolError(internal_error_message(name, exc)) from exc
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                message = validation_message(name, exc.__cause__, self._input_schema(name))
                raise ToolError(message) from exc.__cause__
            raise

    async def run_stdio_async(self) -> None:
        """Serve stdio; a line too deep for the SDK's parser is clipped, not dropped."""
        async with stdio_server() as (read_stream, write_stream):
            await self._lowlevel_server.run(
                DeepJSONReadStream(read_stream),
                write_stream,
                self._lowlevel_server.create_initialization_options(),
            )

    async def run_streamable_http_async(  # type: ignore[override]
        self, *, host: str = "127.0.0.1", port: int = 8000, **kwargs: Any
    ) -> None:
        """Serve streamable HTTP (``MCPServer``'s app, behind :class:`.DeepJSONMiddleware`), with
        the read timeouts and connection cap of :attr:`http_limits` (see :mod:`.httplimits`)."""
        import uvicorn

        app = self.streamable_http_app(host=host, **kwargs)
        limit = kwargs.get("max_request_body_size", DEFAULT_MAX_REQUEST_BODY_SIZE)
        guarded = DeepJSONMiddleware(app, token=self._bearer, max_body=limit)
        limits = self.http_limits
        config = uvicorn.Config(
            guarded,
            host=host,
            port=port,
            log_level=self.settings.log_level.lower(),
            http=timed_protocol(limits),
            limit_concurrency=limits.max_connections,
        )
        await uvicorn.Server(config).serve()

