"""Transport guards: no message an agent sends is dropped unanswered.

The MCP SDK parses every JSON-RPC message with pydantic's JSON parser, which refuses nesting
deeper than 200 levels. Such a message (an ``ingest`` whose metadata nests 200 objects deep,
say) is then lost: over stdio it is dropped and the call never gets an answer; over HTTP the
client gets a protocol error instead of a tool result. Nothing that deep is valid input (metadata
may nest :data:`~m3retriever.validation.MAX_METADATA_DEPTH` levels), so the guards here cut every
container nested deeper than :data:`MAX_JSON_DEPTH` down to an empty one and hand the message on:
the tool's own validation then refuses it with a message the agent can act on ("metadata is
nested more than 16 levels deep; flatten it").

Valid messages are never changed: a message is only rewritten after the SDK's parser refused it
for its depth.
"""

from __future__ import annotations

import hmac
import logging
import re
from types import TracebackType
from typing import Any, Awaitable, Callable, MutableMapping

import anyio
import mcp_types
import pydantic_core
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

__all__ = ["MAX_JSON_DEPTH", "clip_json_depth", "DeepJSONReadStream", "DeepJSONMiddleware"]

logger = logging.getLogger(__name__)

MAX_JSON_DEPTH = 64
"""Containers nested deeper than this in a refused message are replaced by empty ones: far
beyond any valid argument, far below the parser's limit of 200."""

_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_RECURSION = "recursion limit"

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]


def clip_json_depth(text: str, max_depth: int = MAX_JSON_DEPTH) -> str:
    """``text`` (JSON) with every object or array nested deeper than ``max_depth`` emptied.

    Iterative (no recursion, whatever the depth); strings are skipped whole, so brackets inside
    them do not count. Malformed JSON comes out malformed.

    Args:
        text: A JSON document.
        max_depth: Depth of the deepest container kept (the top level is depth 1).

    Returns:
        The clipped document; ``text`` itself when nothing is that deep.
    """
    out: list[str] = []
    pos = depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token[0] == '"':
            continue
        if token in "[{":
            depth += 1
            if depth == max_depth + 1:  # entering a container that is too deep: drop its body
                out.append(text[pos : match.start()])
                out.append("{}" if token == "{" else "[]")
        else:
            if depth == max_depth + 1:  # leaving it: resume copying after its end
                pos = match.end()
            depth -= 1
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _is_too_deep(error: Exception) -> bool:
    return _RECURSION in str(error)


def _rescue_line(item: Exception) -> SessionMessage | None:
    """The stdio line refused for its depth, clipped and parsed; ``None`` for other errors."""
    if not isinstance(item, ValidationError):
        return None
    errors = item.errors(include_url=False)
    if len(errors) != 1 or errors[0]["type"] != "json_invalid" or not _is_too_deep(item):
        return None
    raw = errors[0].get("input")
    if not isinstance(raw, str):
        return None
    try:
        message = mcp_types.jsonrpc_message_adapter.validate_json(clip_json_depth(raw), by_name=False)
    except ValidationError:
        return None
    logger.info("a message nested deeper than the MCP parser accepts was clipped to %d levels", MAX_JSON_DEPTH)
    return SessionMessage(message)


class DeepJSONReadStream:
    """The stdio transport's read stream, with too-deep messages clipped instead of dropped.

    Args:
        inner: The stream ``mcp.server.stdio.stdio_server`` yields (messages and the parse
            errors of refused lines).
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @property
    def last_context(self) -> Any:
        """The sender's context of the last item (the SDK reads it when present)."""
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        """The next message; a line refused for its depth comes back clipped and parsed."""
        item = await self._inner.receive()
        if isinstance(item, ValidationError):
            rescued = await anyio.to_thread.run_sync(_rescue_line, item)
            if rescued is not None:
                return rescued
        return item

    async def aclose(self) -> None:
        """Close the underlying stream."""
        await self._inner.aclose()

    def __aiter__(self) -> "DeepJSONReadStream":
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> "DeepJSONReadStream":
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _refused_for_depth(body: bytes) -> bool:
    """Whether the SDK's parser refuses ``body`` for its nesting depth (and only for that)."""
    try:
        pydantic_core.from_json(body)
    except ValueError as exc:
        return _is_too_deep(exc)
    return False


def _clip_body(body: bytes) -> bytes | None:
    """``body`` with its too-deep containers emptied, or ``None`` if it still does not parse."""
    try:
        clipped = clip_json_depth(body.decode("utf-8")).encode("utf-8")
        pydantic_core.from_json(clipped)
    except ValueError:  # UnicodeDecodeError included: leave it to the SDK's own answer
        return None
    logger.info("a request nested deeper than the MCP parser accepts was clipped to %d levels", MAX_JSON_DEPTH)
    return clipped


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bool]:
    """The request's ASGI messages, read until the body ends or passes ``limit`` bytes.

    Returns:
        The messages read and whether they hold the whole body.
    """
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, False
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, True
        if size > limit:
            return messages, False


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _with_length(scope: Message, length: int) -> Message:
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
    return {**scope, "headers": [*headers, (b"content-length", str(length).encode())]}


class DeepJSONMiddleware:
    """ASGI middleware for the streamable-HTTP app: a POSTed message refused for its depth is
    clipped (see the module) instead of answered with a protocol error.

    Only requests that carry the bearer token (when one is set) are read here, and only bodies
    within the SDK's size limit; everything else goes to the app untouched, unread.

    Args:
        app: The MCP Starlette app.
        token: The bearer token the app requires, if any.
        max_body: The SDK's request body limit.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, max_body: int = DEFAULT_MAX_REQUEST_BODY_SIZE) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode() if token is not None else None
        self.max_body = max_body

    def _wants(self, scope: Message) -> bool:
        if scope["type"] != "http" or scope.get("method") != "POST":
            return False
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        try:
            if int(headers.get(b"content-length", b"0")) > self.max_body:
                return False
        except ValueError:
            return False
        if self._expected is None:
            return True
        return hmac.compare_digest(headers.get(b"authorization", b""), self._expected)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if not self._wants(scope):
            await self.app(scope, receive, send)
            return
        messages, complete = await _read_body(receive, self.max_body)
        if complete:
            body = b"".join(m.get("body", b"") for m in messages)
            # The parse is fast (it stops at the 201st level); clipping, rare, runs in a thread.
            clipped = await anyio.to_thread.run_sync(_clip_body, body) if _refused_for_depth(body) else None
            if clipped is not None:
                messages = [{"type": "http.request", "body": clipped, "more_body": False}]
                scope = _with_length(scope, len(clipped))
        await self.app(scope, _replay(messages, receive), send)
