"""The MCP server against hostile or careless input, crashes and concurrent clients.

Whatever an agent sends, a tool call is answered with a tool result: ``isError`` with a message
naming the problem and the fix, never a protocol error, a bare "Error executing tool", a dropped
message or a crashed server; and the store is left as it was. Concurrent reads overlap; writes
run one at a time. Real server processes (stdio, streamable HTTP) and the real ``mcp`` client,
except where a test must instrument the retriever (then the server runs in-process, still behind
a real client session). Models are the tiny random ones from ``tinymodels``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("m3retriever_mcp")
pytest.importorskip("mcp")
httpx2 = pytest.importorskip("httpx2")

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # servers in subprocesses

from mcp import Client  # noqa: E402
from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from m3retriever.validation import MAX_ID_CHARS, MAX_QUERY_CHARS  # noqa: E402
from m3retriever_mcp import create_server  # noqa: E402
from m3retriever_mcp.transport import MAX_JSON_DEPTH, clip_json_depth  # noqa: E402
from test_adapter_mcp import (  # noqa: E402,F401 - fixtures are used by name
    CALL_TIMEOUT,
    SESSION_TIMEOUT,
    _log_tail,
    _search,
    _text,
    _tools,
    fresh_config,
    http_server,
    shared_config,
    stdio_session,
)


def _nested(depth: int, leaf: Any = 1, key: str | None = "a") -> Any:
    """``depth`` objects (or lists, with ``key=None``) nested in one another."""
    value = leaf
    for _ in range(depth):
        value = {key: value} if key is not None else [value]
    return value


SEARCH_CASES: list[tuple[dict, list[str]]] = [
    ({"query": "x", "top_k": "5"}, ["top_k", "valid integer", "'5'"]),
    ({"query": "x", "top_k": 2.5}, ["top_k", "integer"]),
    ({"query": "x", "top_k": 10**30}, ["top_k", "less than or equal to 50"]),
    ({"query": "x", "top_k": True}, ["top_k", "valid integer"]),
    ({"query": "x" * (MAX_QUERY_CHARS + 1)}, [f"{MAX_QUERY_CHARS + 1:,} characters", "pass the part that matters"]),
    ({"query": 42}, ["query", "valid string"]),
    ({"query": "x", "filter": {"a b": "c"}}, ["'a b' is not a valid metadata key", "letters, digits"]),
    ({"query": "x", "filter": {"x": {"gte": "inf"}}}, ["gte must be a number", "'inf'"]),
    ({"query": "x", "filter": {"x": 2**70}}, ["does not fit in 64 bits", "store it as a string"]),
    ({"query": "x", "filter": {"x": {"gte": 1, "lt": True}}}, ["lt must be a number, got True"]),
    ({"query": "x", "min_score": "0.5"}, ["min_score", "valid number"]),
]

WRITE_CASES: list[tuple[str, dict, list[str]]] = [
    ("ingest", {"documents": [{"doc_id": "deep", "text": "t", "metadata": _nested(200)}]}, ["nested more than 16 levels", "flatten"]),
    ("ingest", {"documents": [{"doc_id": "deep", "text": "t", "metadata": _nested(150)}]}, ["nested more than 16 levels"]),
    ("ingest", {"documents": [{"doc_id": "k", "text": "t", "metadata": {"file name": 1}}]}, ["'file name' is not allowed", "file_name"]),
    ("ingest", {"documents": [{"doc_id": "big", "text": "t", "metadata": {"n": 2**70}}]}, ["does not fit in 64 bits"]),
    ("ingest", {"documents": [{"doc_id": "i" * (MAX_ID_CHARS + 1), "text": "t"}]}, ["documents[0].doc_id", f"more than {MAX_ID_CHARS}"]),
    ("ingest", {"documents": []}, ["documents", "at least 1"]),
    ("delete", {"doc_ids": ["i" * (MAX_ID_CHARS + 1)]}, ["doc_ids[0]", f"more than {MAX_ID_CHARS}"]),
    ("delete", {"filter": {"a b": 1}}, ["'a b' is not a valid metadata key"]),
]


def _assert_useful_error(result: Any, needles: list[str], args: Any) -> None:
    text = _text(result)
    assert result.is_error is True, (args, text[:300])
    for needle in needles:
        assert needle in text, (needle, text[:600])
    assert "errors.pydantic.dev" not in text and "function-before[" not in text, text[:600]
    assert len(text) < 2000, "a refused value must not be echoed whole"


async def _counts(session: ClientSession) -> tuple[int, int]:
    info = (await session.call_tool("collection_info", {})).structured_content
    return info["documents"], info["points"]


# -- pure helpers ------------------------------------------------------------------------------
def test_clip_json_depth_empties_only_what_is_too_deep() -> None:
    assert clip_json_depth('{"a": {"b": [1, {"c": 2}]}, "s": "[[{"}', 2) == '{"a": {"b": []}, "s": "[[{"}'
    doc = '{"m": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + ', "k": [1, 2]}'  # deeper than recursion allows
    clipped = json.loads(clip_json_depth(doc, MAX_JSON_DEPTH))
    assert clipped["k"] == [1, 2]
    shallow = json.dumps({"query": "a [b] {c}", "filter": {"x": {"any": ["y"]}}})
    assert clip_json_depth(shallow) is shallow


# -- real server processes ---------------------------------------------------------------------
async def test_stdio_bad_input_is_a_tool_error_and_changes_nothing(
    fresh_config: Path, corpus_docs: list[dict], tmp_path: Path
) -> None:
    log = tmp_path / "stdio-hardening.log"
    try:
        with anyio.fail_after(SESSION_TIMEOUT):
            async with stdio_session(fresh_config, log, "--allow-writes") as session:
                tools = await _tools(session)
                props = tools["search"].input_schema["properties"]
                assert props["query"]["maxLength"] == MAX_QUERY_CHARS
                assert props["top_k"]["type"] == "integer"
                doc = tools["ingest"].input_schema["$defs"]["DocumentIn"]["properties"]
                assert doc["doc_id"]["maxLength"] == MAX_ID_CHARS
                before = await _counts(session)
                assert before[0] == len(corpus_docs)

                for args, needles in SEARCH_CASES:
                    _assert_useful_error(await session.call_tool("search", args), needles, args)
                for tool, args, needles in WRITE_CASES:
                    with anyio.fail_after(CALL_TIMEOUT):  # a dropped message would hang here
                        result = await session.call_tool(tool, args)
                    _assert_useful_error(result, needles, (tool, str(args)[:80]))

                assert await _counts(session) == before
                out = await _search(session, tools, {"query": "capital of France", "top_k": 3})
                assert len(out["hits"]) == 3
    except BaseException:
        print("server log:\n" + _log_tail(log))
        raise


async def test_http_bad_input_is_a_tool_error(http_server) -> None:
    url, token, log = http_server
    cases = [
        *SEARCH_CASES[:5],
        # 250 nested lists: deeper than the SDK's JSON parser accepts (200 levels)
        ({"query": "x", "filter": {"tag": _nested(250, "a", key=None)}}, ["filter on 'tag'"]),
    ]
    try:
        with anyio.fail_after(SESSION_TIMEOUT):
            client = httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=CALL_TIMEOUT)
            )
            async with client, streamable_http_client(url, http_client=client) as (read, write):
                async with ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT) as session:
                    await session.initialize()
                    tools = await _tools(session)
                    for args, needles in cases:
                        _assert_useful_error(await session.call_tool("search", args), needles, str(args)[:80])
                    out = await _search(session, tools, {"query": "rank fusion", "top_k": 2})
                    assert len(out["hits"]) == 2
    except BaseException:
        print("server log:\n" + _log_tail(log))
        raise


# -- in-process server (instrumented retriever), real client sessions -------------------------
@pytest.fixture
def seeded(make_retriever, corpus_docs: list[dict]):
    r = make_retriever()
    r.ingest(corpus_docs)
    return r


async def test_crash_reaches_the_agent_as_its_type_and_the_log_as_a_traceback(
    seeded, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail /srv/data")

    seeded.search = broken
    adapter = create_server(seeded)
    with caplog.at_level(logging.ERROR, logger="m3retriever_mcp"), anyio.fail_after(60):
        async with Client(adapter.server) as client:
            result = await client.call_tool("search", {"query": "capital"})
            text = _text(result)
            assert result.is_error is True
            assert "Internal error in tool 'search' (RuntimeError)" in text
            assert "secret" not in text
            info = await client.call_tool("collection_info", {})
            assert not info.is_error  # the server keeps serving
    assert "RuntimeError: secret detail" in caplog.text  # the traceback, server-side


class _Gauge:
    """Counts calls in flight at once."""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self._lock = threading.Lock()

    def wrap(self, fn: Any, seconds: float) -> Any:
        def slow(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            try:
                time.sleep(seconds)
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.now -= 1

        return slow


async def test_concurrent_searches_from_several_clients_overlap(seeded) -> None:
    seeded.search("warm up")  # load the models first
    gauge = _Gauge()
    seeded.search = gauge.wrap(seeded.search, 0.5)
    adapter = create_server(seeded)
    done: list[float] = []

    async def client_calls() -> None:
        async with Client(adapter.server) as client:
            result = await client.call_tool("search", {"query": "capital", "top_k": 2})
            assert not result.is_error, _text(result)
            done.append(time.perf_counter())

    with anyio.fail_after(60):
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(client_calls)
    assert len(done) == 4
    assert gauge.peak == 4, f"searches ran {gauge.peak} at a time"
    assert max(done) - start < 4 * 0.5  # not one after another


async def test_writes_run_one_at_a_time_without_blocking_searches(seeded) -> None:
    seeded.search("warm up")
    writes = _Gauge()
    seeded.ingest = writes.wrap(seeded.ingest, 1.0)
    adapter = create_server(seeded, writes=True)
    finished: dict[str, float] = {}

    async def ingest(i: int) -> None:
        async with Client(adapter.server) as client:
            doc = {"doc_id": f"new{i}", "text": f"Document number {i} about rivers."}
            result = await client.call_tool("ingest", {"documents": [doc]})
            assert not result.is_error, _text(result)
            finished[f"ingest{i}"] = time.perf_counter()

    async def search() -> None:
        await anyio.sleep(0.3)  # while the first ingest runs
        async with Client(adapter.server) as client:
            result = await client.call_tool("search", {"query": "rivers"})
            assert not result.is_error, _text(result)
            finished["search"] = time.perf_counter()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(ingest, i)
            tg.start_soon(search)
    assert writes.peak == 1
    assert finished["search"] < min(v for k, v in finished.items() if k != "search")
    assert seeded.info()["documents"] == 12 + 3
