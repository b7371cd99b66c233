"""Slow HTTP clients (slowloris) against the real streamable-HTTP server, over real sockets.

A connection that sends half a header line and stops, trickles its headers a byte at a time, or
announces a body and never sends it all, is answered ``408`` and closed once the (shortened)
header or body timeout passes, while a normal MCP client keeps working; past
``--max-connections`` a request is answered ``503`` until the slow connections are gone.
"""

from __future__ import annotations

import math
import socket
import time
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

pytest.importorskip("m3retriever_mcp")
pytest.importorskip("mcp")
httpx2 = pytest.importorskip("httpx2")

from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from m3retriever.errors import ConfigError  # noqa: E402
from m3retriever_mcp import HTTPLimits  # noqa: E402
from test_adapter_mcp import CALL_TIMEOUT, _log_tail, running_http_server, shared_config  # noqa: E402,F401

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # servers in subprocesses

TIMEOUT_S = 3.0  # the shortened header and body timeouts
SLACK_S = 3.0  # how late a close may come (a loaded machine)
WAIT_S = TIMEOUT_S + SLACK_S + 5  # how long a test waits for a close before calling it open


def _head(port: int, token: str, length: int) -> bytes:
    return (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _slow_clients(port: int, token: str) -> list[tuple[str, bytes, bytes]]:
    """(kind, sent at once, then trickled a byte every 0.25 s) for 12 slow connections."""
    half_line = f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthoriz".encode()
    stalled_body = _head(port, token, 200) + b'{"jsonrpc": "2.0", '
    return (
        [("half header line", half_line, b"")] * 6
        + [("trickled headers", b"P", b"OST /mcp HTTP/1.1\r\nHost: x\r\n" * 10)] * 3
        + [("stalled body", stalled_body, b"")] * 2
        + [("trickled body", _head(port, token, 400), b" " * 400)]
    )


def _open(port: int, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(first)
    return sock


def _until_closed(sock: socket.socket, trickle: bytes, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closed ``sock`` (``inf`` if it is still open after ``limit``)
    and what it sent; ``trickle`` goes out a byte every 0.25 s meanwhile."""
    start, data, pos = time.monotonic(), b"", 0
    sock.settimeout(0.25)
    try:
        while time.monotonic() - start < limit:
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                if pos < len(trickle):
                    sock.sendall(trickle[pos : pos + 1])
                    pos += 1
                continue
            except ConnectionResetError:
                return time.monotonic() - start, data
            if not chunk:
                return time.monotonic() - start, data
            data += chunk
        return math.inf, data
    finally:
        sock.close()


def _status(port: int, token: str) -> int:
    """The status of a plain, well-formed request on a fresh connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        line = sock.makefile("rb").readline()
    return int(line.split()[1])


async def _normal_client(url: str, token: str) -> float:
    """A whole MCP session: initialize and a tool call (when that finished, monotonic, is
    returned), then, past both timeouts on the same session, another call."""
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=CALL_TIMEOUT))
    async with client, streamable_http_client(url, http_client=client) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT) as session:
            await session.initialize()
            info = await session.call_tool("collection_info", {})
            assert not info.is_error and info.structured_content["documents"] > 0
            served = time.monotonic()
            await anyio.sleep(TIMEOUT_S + 1)  # its open streams and kept-alive connections are not cut
            info = await session.call_tool("collection_info", {})
            assert not info.is_error and info.structured_content["documents"] > 0
    return served


async def test_slow_connections_are_closed_and_normal_clients_served(
    shared_config: Path,  # noqa: F811 - the fixture, imported above
    tmp_path: Path,
) -> None:
    log = tmp_path / "slow-server.log"
    limits = ("--header-timeout", str(TIMEOUT_S), "--body-timeout", str(TIMEOUT_S))
    with running_http_server(shared_config, log, *limits) as (port, token):
        results: dict[int, tuple[str, float, bytes]] = {}
        slow = [(kind, _open(port, first), trickle) for kind, first, trickle in _slow_clients(port, token)]
        opened = time.monotonic()

        async def watch(i: int, kind: str, sock: socket.socket, trickle: bytes) -> None:
            seconds, data = await anyio.to_thread.run_sync(_until_closed, sock, trickle, WAIT_S)
            results[i] = (kind, seconds, data)

        try:
            with anyio.fail_after(120):
                async with anyio.create_task_group() as tg:
                    for i, (kind, sock, trickle) in enumerate(slow):
                        tg.start_soon(watch, i, kind, sock, trickle)
                    served = await _normal_client(f"http://127.0.0.1:{port}/mcp", token)
        except BaseException:
            print("server log:\n" + _log_tail(log))
            raise
        assert len(results) == 12
        for kind, seconds, data in results.values():
            assert seconds != math.inf, f"a connection with a {kind} was still open after {WAIT_S} s"
            assert TIMEOUT_S * 0.8 <= seconds <= TIMEOUT_S + SLACK_S, (kind, seconds)
            assert data.startswith(b"HTTP/1.1 408"), (kind, data[:80])
        # The normal session ran while every slow connection was open.
        assert served < opened + min(seconds for _, seconds, _ in results.values())
        assert _status(port, token) != 408  # and the server still serves


async def test_past_max_connections_requests_get_503_until_slow_ones_time_out(
    shared_config: Path,  # noqa: F811 - the fixture, imported above
    tmp_path: Path,
) -> None:
    log = tmp_path / "cap-server.log"
    extra = ("--header-timeout", str(TIMEOUT_S), "--max-connections", "3")
    with running_http_server(shared_config, log, *extra) as (port, token):
        assert _status(port, token) != 503
        slow = [_open(port, b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(3)]
        try:
            assert _status(port, token) == 503
            waits = await anyio.to_thread.run_sync(
                lambda: [_until_closed(sock, b"", WAIT_S)[0] for sock in slow]
            )
            assert max(waits) <= TIMEOUT_S + SLACK_S, waits
            assert _status(port, token) != 503
        except BaseException:
            print("server log:\n" + _log_tail(log))
            raise
        finally:
            for sock in slow:
                sock.close()


@pytest.mark.parametrize(
    "kwargs",
    [{"header_timeout": 0}, {"body_timeout": -1.0}, {"header_timeout": math.inf}, {"max_connections": 0}],
)
def test_limits_refuse_nonsense(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="pass e.g."):
        HTTPLimits(**kwargs)


def test_serve_mcp_takes_the_limits(shared_config: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    """The core CLI hands its HTTP limits to the adapter: a nonsense one is refused there."""
    from m3retriever.cli import main

    assert main(["serve-mcp", "--http", "--config", str(shared_config), "--header-timeout", "-1"]) == 2
    assert "header_timeout must be a positive number" in capsys.readouterr().err
