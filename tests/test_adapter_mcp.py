"""The MCP adapter (plugins/m3retriever-mcp), end to end.

A real server process (``python -m m3retriever_mcp``) over a real embedded store holding the test
corpus, driven by the real ``mcp`` 2.x client: over stdio and over streamable HTTP with a bearer
token. Models are the tiny random BGE-M3 / reranker from ``tinymodels``: tests check plumbing,
schemas and errors, never ranking quality.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import anyio
import pytest

pytest.importorskip("m3retriever_mcp")
mcp = pytest.importorskip("mcp")
jsonschema = pytest.importorskip("jsonschema")
httpx2 = pytest.importorskip("httpx2")  # the HTTP client the mcp SDK is built on

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # servers in subprocesses  # backstop; each session is bounded by anyio.fail_after

from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from m3retriever import Retriever, load_config  # noqa: E402

SESSION_TIMEOUT = 150  # seconds for a whole client session, server start included
CALL_TIMEOUT = 90  # seconds for one request (the first search loads the models)
SERVER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


# -- fixtures ---------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def _seed_store(root: Path, settings: dict, docs: list[dict]) -> Path:
    """Ingest ``docs`` into ``root/store``, close it, and write ``root/m3r.toml`` pointing at it."""
    location = root / "store"
    cfg = load_config(env={}, location=str(location), **settings)
    with Retriever(cfg) as r:  # closed before the server process opens the store (one lock)
        report = r.ingest(docs)
        assert report.added == len(docs)
    values = {"location": str(location), **settings}
    path = root / "m3r.toml"
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items()))
    return path


@pytest.fixture(scope="module")
def shared_config(tmp_path_factory: pytest.TempPathFactory, tiny_settings: dict, corpus_docs: list[dict]) -> Path:
    """A config file for a store holding the corpus (read-only tests share it)."""
    return _seed_store(tmp_path_factory.mktemp("mcp-shared"), tiny_settings, corpus_docs)


@pytest.fixture
def fresh_config(tmp_path: Path, tiny_settings: dict, corpus_docs: list[dict]) -> Path:
    """A config file for a store of its own (for tests that write)."""
    return _seed_store(tmp_path, tiny_settings, corpus_docs)


def _server_args(config: Path, *extra: str) -> list[str]:
    return ["-m", "m3retriever_mcp", "--config", str(config), *extra]


def _log_tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


@asynccontextmanager
async def stdio_session(config: Path, log: Path, *extra: str) -> AsyncIterator[ClientSession]:
    """A real server subprocess over stdio; the SDK's stdio client terminates it on exit."""
    params = StdioServerParameters(
        command=sys.executable, args=_server_args(config, *extra), env=SERVER_ENV, cwd=str(config.parent)
    )
    with open(log, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT) as session:
                await session.initialize()
                yield session


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(proc: subprocess.Popen, port: int, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{_log_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"server did not listen on port {port} within {timeout}s:\n{_log_tail(log)}")


@contextmanager
def running_http_server(config: Path, log: Path, *extra: str) -> Iterator[tuple[int, str]]:
    """A real server subprocess on streamable HTTP with a bearer token (``extra``: more
    options); yields its port and token; always terminated."""
    port = _free_port()
    token = "test-token-" + os.urandom(8).hex()
    env = {k: v for k, v in os.environ.items() if not k.startswith("M3R_")} | SERVER_ENV
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, *_server_args(config, "--http", "--port", str(port), "--token", token, *extra)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(log.parent),
        )
    try:
        _wait_for_port(proc, port, log)
        yield port, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture
def http_server(shared_config: Path, tmp_path: Path):
    """A real server subprocess on streamable HTTP with a bearer token; always terminated."""
    log = tmp_path / "http-server.log"
    with running_http_server(shared_config, log) as (port, token):
        yield f"http://127.0.0.1:{port}/mcp", token, log


# -- checks shared by the transports ----------------------------------------------------------
def _validate(instance: Any, schema: dict) -> None:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    cls(schema).validate(instance)


def _text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


async def _tools(session: ClientSession) -> dict[str, Any]:
    return {t.name: t for t in (await session.list_tools()).tools}


async def _search(session: ClientSession, tools: dict, args: dict) -> dict:
    result = await session.call_tool("search", args)
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    _validate(result.structured_content, tools["search"].output_schema)
    assert _text(result).strip(), "search must also return readable text content"
    return result.structured_content


async def _check_read_only_server(session: ClientSession, corpus_size: int) -> None:
    tools = await _tools(session)
    assert {"search", "collection_info"} <= set(tools)
    assert "ingest" not in tools and "delete" not in tools  # writes are off by default
    search = tools["search"]
    assert search.annotations is not None
    assert search.annotations.read_only_hint is True
    assert search.annotations.open_world_hint is False
    assert search.output_schema is not None
    props = search.input_schema["properties"]
    assert props["top_k"]["minimum"] == 1 and props["top_k"]["maximum"] == 50
    assert props["top_k"]["default"] == 5
    assert "filter" in props and "min_score" in props
    assert search.input_schema["required"] == ["query"]

    # A real search: hits with text, source, ids, metadata and per-stage scores.
    out = await _search(session, tools, {"query": "capital of France", "top_k": 3})
    assert out["no_confident_match"] is False
    assert set(out["branch_weights"]) == {"dense", "sparse"} and all(w > 0 for w in out["branch_weights"].values())  # fixed: off by default
    assert 1 <= len(out["hits"]) <= 3
    ranks = []
    for hit in out["hits"]:
        assert hit["text"] and hit["doc_id"] and hit["id"]
        assert hit["source"] == f"test://{hit['doc_id']}"
        assert hit["chunk_index"] == 0
        assert hit["metadata"]["lang"] in {"en", "de", "es"}
        scores = hit["scores"]
        assert isinstance(scores["final"], float)
        assert scores["fused"] is not None and scores["fused_rank"] >= 1
        assert scores["rerank_logit"] is not None and 0.0 <= scores["rerank"] <= 1.0
        assert hit["confidence"] == scores["confidence"] and 0.0 <= hit["confidence"] <= 1.0
        assert isinstance(hit["matched_terms"], list)
        assert [m["term"] for m in hit["matches"]] == hit["matched_terms"]
        for m in hit["matches"]:  # the query's words, with where they are in the passage
            assert m["term"] in {"capital", "france"}
            assert all(hit["text"][a:b].lower() == m["term"] for a, b in m["spans"])
        ranks.append(scores["final_rank"])
    assert ranks == list(range(1, len(ranks) + 1))
    finals = [h["scores"]["final"] for h in out["hits"]]
    assert finals == sorted(finals, reverse=True)

    # Default top_k is 5.
    out = await _search(session, tools, {"query": "animals"})
    assert len(out["hits"]) == 5

    # Typed filters: equality, any-of, range, not.
    out = await _search(session, tools, {"query": "capital city", "top_k": 10, "filter": {"lang": "de"}})
    assert [h["doc_id"] for h in out["hits"]] == ["berlin"]
    out = await _search(
        session,
        tools,
        {"query": "capital", "top_k": 10, "filter": {"topic": {"any": ["geo"]}, "year": {"gte": 2001}}},
    )
    assert [h["doc_id"] for h in out["hits"]] == ["madrid"]
    out = await _search(
        session, tools, {"query": "capital", "top_k": 50, "filter": {"lang": {"not": "en"}}}
    )
    assert sorted(h["doc_id"] for h in out["hits"]) == ["berlin", "madrid"]

    # min_score nobody reaches: an explicit "no confident match", not weak hits.
    result = await session.call_tool("search", {"query": "capital of France", "min_score": 1.0})
    assert not result.is_error, _text(result)
    _validate(result.structured_content, search.output_schema)
    assert result.structured_content["no_confident_match"] is True
    assert result.structured_content["hits"] == []
    assert "no confident match" in _text(result).lower()

    # Bad arguments: tool errors (isError) with a message, and the session keeps working.
    bad = [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query is empty"),
        ({"top_k": 3}, "query"),
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"query": "x", "top_k": 51}, "top_k"),
        ({"query": "x", "filter": {"year": {"foo": 1}}}, "unknown operators"),
        ({"query": "x", "filter": {"year": 1.5}}, "float"),
        ({"query": "x", "filter": {"tag": {"any": []}}}, "at least one value"),
        ({"query": "x", "filter": "lang=en"}, "filter"),
        ({"query": "x", "min_score": 1.5}, "min_score"),
    ]
    for args, needle in bad:
        result = await session.call_tool("search", args)
        assert result.is_error is True, args
        assert needle in _text(result), (args, _text(result))
    out = await _search(session, tools, {"query": "vector database filters", "top_k": 2})
    assert len(out["hits"]) == 2

    # collection_info tool and resource.
    result = await session.call_tool("collection_info", {})
    assert not result.is_error, _text(result)
    _validate(result.structured_content, tools["collection_info"].output_schema)
    info = result.structured_content
    assert info["documents"] == corpus_size and info["points"] >= corpus_size
    assert info["profile"] == "bge-m3"
    assert info["reranker"]["name"] == "cross-encoder"
    assert info["encoders"]["dense"]["name"] == "bge-m3"
    assert "location" not in info
    resources = await session.list_resources()
    assert "m3retriever://collection/info" in {str(r.uri) for r in resources.resources}
    read = await session.read_resource("m3retriever://collection/info")
    assert json.loads(read.contents[0].text)["documents"] == corpus_size


# -- tests ------------------------------------------------------------------------------------
def test_plugin_registers_mcp_adapter(make_retriever) -> None:
    from mcp.server.mcpserver import MCPServer

    from m3retriever.errors import ConfigError
    from m3retriever.plugins import adapter_factories, get_adapter

    assert "mcp" in adapter_factories()
    adapter = get_adapter("mcp", make_retriever(), description="Geography notes")
    assert isinstance(adapter.server, MCPServer)
    assert callable(adapter.serve)
    with pytest.raises(ConfigError, match="transport"):
        adapter.serve("carrier-pigeon")
    with pytest.raises(ConfigError, match="token"):
        get_adapter("mcp", adapter.retriever, token="  ")


async def test_stdio_read_only(shared_config: Path, corpus_docs: list[dict], tmp_path: Path) -> None:
    log = tmp_path / "stdio-server.log"
    try:
        with anyio.fail_after(SESSION_TIMEOUT):
            async with stdio_session(shared_config, log) as session:
                await _check_read_only_server(session, len(corpus_docs))
    except BaseException:
        print("server log:\n" + _log_tail(log))
        raise


async def test_streamable_http_with_token(http_server, corpus_docs: list[dict]) -> None:
    url, token, log = http_server
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with httpx2.AsyncClient(timeout=30) as client:
        r = await client.post(url, json=init, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].lower().startswith("bearer")
        r = await client.post(url, json=init, headers={**headers, "Authorization": "Bearer wrong"})
        assert r.status_code == 401
    try:
        with anyio.fail_after(SESSION_TIMEOUT):
            http_client = httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=CALL_TIMEOUT)
            )
            async with http_client:
                async with streamable_http_client(url, http_client=http_client) as (read, write):
                    async with ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT) as session:
                        await session.initialize()
                        await _check_read_only_server(session, len(corpus_docs))
    except BaseException:
        print("server log:\n" + _log_tail(log))
        raise


async def test_stdio_allow_writes(fresh_config: Path, corpus_docs: list[dict], tmp_path: Path) -> None:
    log = tmp_path / "stdio-writes.log"
    extra = ("--allow-writes", "--description", "Short encyclopedia notes on databases and cities")
    try:
        with anyio.fail_after(SESSION_TIMEOUT):
            async with stdio_session(fresh_config, log, *extra) as session:
                tools = await _tools(session)
                assert {"search", "collection_info", "ingest", "delete"} <= set(tools)
                assert "encyclopedia notes" in tools["search"].description
                for name in ("ingest", "delete"):
                    ann = tools[name].annotations
                    assert ann.read_only_hint is False and ann.destructive_hint is True
                    assert ann.idempotent_hint is True

                docs = [
                    {"doc_id": "lisbon", "text": "Lisbon is the capital of Portugal.", "metadata": {"lang": "pt", "year": 2022}},
                    {"doc_id": "oslo", "text": "Oslo is the capital of Norway.", "metadata": {"lang": "no"}, "source": "notes://oslo"},
                ]
                result = await session.call_tool("ingest", {"documents": docs})
                assert not result.is_error, _text(result)
                _validate(result.structured_content, tools["ingest"].output_schema)
                assert result.structured_content["added"] == 2
                # Unchanged documents are skipped.
                result = await session.call_tool("ingest", {"documents": docs[:1]})
                assert result.structured_content["skipped"] == 1

                out = await _search(session, tools, {"query": "Portugal", "filter": {"lang": "pt"}})
                assert [h["doc_id"] for h in out["hits"]] == ["lisbon"]
                assert out["hits"][0]["metadata"] == {"lang": "pt", "year": 2022}

                # Library InputErrors become tool errors carrying their message.
                dup = [{"doc_id": "x", "text": "one"}, {"doc_id": "x", "text": "two"}]
                result = await session.call_tool("ingest", {"documents": dup})
                assert result.is_error is True and "appears twice" in _text(result)
                result = await session.call_tool("ingest", {"documents": [{"doc_id": "y"}]})
                assert result.is_error is True and "text" in _text(result)
                result = await session.call_tool("delete", {})
                assert result.is_error is True and "refusing to delete everything" in _text(result)

                result = await session.call_tool("delete", {"doc_ids": ["lisbon"]})
                assert not result.is_error, _text(result)
                _validate(result.structured_content, tools["delete"].output_schema)
                assert result.structured_content["deleted_chunks"] == 1
                result = await session.call_tool("delete", {"filter": {"lang": {"any": ["no"]}}})
                assert result.structured_content["deleted_chunks"] == 1
                out = await _search(session, tools, {"query": "capital", "top_k": 50})
                assert not {"lisbon", "oslo"} & {h["doc_id"] for h in out["hits"]}

                info = (await session.call_tool("collection_info", {})).structured_content
                assert info["documents"] == len(corpus_docs)
                assert info["description"] == "Short encyclopedia notes on databases and cities"
    except BaseException:
        print("server log:\n" + _log_tail(log))
        raise
