"""Read timeouts and a connection cap for the streamable-HTTP server (slow clients).

uvicorn, which serves the MCP app, closes an idle keep-alive connection but has no deadline for
the request itself: a client that opens a socket and sends half a header line, or announces a
body and never finishes it (slowloris), holds the connection as long as it likes, and enough of
them hold every file descriptor. :func:`timed_protocol` gives uvicorn an HTTP protocol with two
deadlines:

- **header timeout**: a request's head (request line and headers) must be complete within
  ``header_timeout`` seconds of the connection opening, or of the first byte of a later request
  on a kept-alive connection;
- **body timeout**: its body must be read whole within ``body_timeout`` seconds of the head
  (until the server starts its response: a long streamed response is not cut).

A connection past either deadline gets ``408 Request Timeout`` and is closed. ``max_connections``
is uvicorn's ``limit_concurrency``: past that many open connections (or requests in progress), a
request is answered ``503`` instead of holding one more.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, MutableMapping

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from m3retriever import ConfigError

__all__ = ["HTTPLimits", "timed_protocol"]

logger = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]

_TIMEOUT_RESPONSE = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


@dataclass(frozen=True)
class HTTPLimits:
    """How long an HTTP client may take to send a request, and how many may be connected.

    Attributes:
        header_timeout: Seconds to send a request's head (request line and headers).
        body_timeout: Seconds, after the head, to send its body.
        max_connections: Open connections (and requests in progress) served at once; more are
            answered 503. ``None``: no cap.
    """

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int | None = 200

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"the MCP HTTP {name} must be a positive number of seconds, got {value!r}; pass e.g. 10")
        cap = self.max_connections
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ConfigError(f"the MCP HTTP max_connections must be an integer of at least 1, got {cap!r}; pass e.g. 200")


class _TimedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol with the deadlines of :class:`HTTPLimits` (set by :func:`timed_protocol`).

    One timer per connection: armed for the head when the connection opens (or a later request's
    first byte arrives), re-armed for the body when uvicorn hands the request to the app, stopped
    once the body is read or the response starts. The app is wrapped per connection to see that.
    """

    limits: HTTPLimits = HTTPLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app: ASGIApp = self.app  # type: ignore[has-type]
        self.app = self._timed_app
        self._timer: asyncio.TimerHandle | None = None
        self._phase: object | None = None  # what the running timer is for
        self._active = 0  # requests handed to the app and not finished
        self._idle = False  # between requests: the next byte starts a head
        self._received = False  # bytes arrived since the head timer was armed

    # -- the timer ---------------------------------------------------------------------
    def _arm(self, seconds: float, what: str) -> object:
        self._disarm()
        phase = object()
        self._phase = phase
        self._timer = self.loop.call_later(seconds, self._expire, what, seconds)
        return phase

    def _disarm(self, phase: object | None = None) -> None:
        """Stop the timer (only if it is still ``phase``'s, when given)."""
        if phase is not None and phase is not self._phase:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._phase = None

    def _expire(self, what: str, seconds: float) -> None:
        self._timer = None
        self._phase = None
        if self.transport is None or self.transport.is_closing():
            return
        peer = "%s:%s" % self.client if self.client else "a client"
        logger.info("closing the connection of %s: the request %s took longer than %g s", peer, what, seconds)
        if what == "body" or self._received:
            self.transport.write(_TIMEOUT_RESPONSE)  # no response has started on this connection
        self.transport.close()

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, "head")

    def data_received(self, data: bytes) -> None:
        if self._idle and data:  # the first byte of the next request on this connection
            self._idle = False
            self._arm(self.limits.header_timeout, "head")
        self._received = self._received or bool(data)
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # -- the app, per request ---------------------------------------------------------------
    async def _timed_app(self, scope: Message, receive: Receive, send: Send) -> None:
        """The app, called by uvicorn once a request's head is in: the body deadline starts."""
        self._active += 1
        self._idle = False
        phase = self._arm(self.limits.body_timeout, "body")

        async def timed_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                self._disarm(phase)  # the body is complete (or the client left)
            return message

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._disarm(phase)  # the app answers: no more waiting on the client
            await send(message)

        try:
            await self._app(scope, timed_receive, timed_send)
        finally:
            self._disarm(phase)
            self._active -= 1
            if self._active == 0:
                self._idle = True
                self._received = False


def timed_protocol(limits: HTTPLimits) -> type[asyncio.Protocol]:
    """An HTTP protocol class for ``uvicorn.Config(http=...)`` enforcing ``limits``' timeouts
    (the connection cap is ``uvicorn.Config(limit_concurrency=limits.max_connections)``)."""
    return type("TimedHTTPProtocol", (_TimedHTTPProtocol,), {"limits": limits})
