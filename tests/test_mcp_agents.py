"""The MCP server for agents, at every protocol revision the SDK speaks: a real server process
(``python -m m3retriever_mcp --collections a,b``) driven over stdio by the SDK's own client,
which negotiates 2025-06-18 and 2025-11-25 with the initialize handshake and 2026-07-28 (the
stateless revision) with ``server/discover``.

Per revision: the collections tool and resources, search results with resource links that
``resources/read`` and ``fetch`` resolve (whole document, one chunk), paging with a cursor
(pages that neither overlap nor skip, tampered and mismatched cursors refused), the
``collection`` argument and its allow-list, and progress notifications while ``ingest`` runs.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import anyio
import pytest

pytest.importorskip("m3retriever_mcp")
pytest.importorskip("mcp")

import mcp_types as types  # noqa: E402
from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS  # noqa: E402

from m3retriever import load_config  # noqa: E402
from m3retriever_mcp.served import close_all, open_collections  # noqa: E402
from test_adapter_mcp import CALL_TIMEOUT, SERVER_ENV, SESSION_TIMEOUT, _log_tail, _text, _toml_value, _validate  # noqa: E402

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # servers in subprocesses

REVISIONS = ["2025-06-18", "2025-11-25", "2026-07-28"]

LONG = " ".join(f"Sentence {i} of the long report on basalt columns and granite quarries." for i in range(40))
ROCKS = [
    {"doc_id": "long/../report", "text": LONG, "metadata": {"kind": "report"}, "source": "notes://long"},
    {"doc_id": "quartz", "text": "Quartz is a hard mineral made of silicon and oxygen.", "metadata": {"kind": "note"}},
]


def seed_two_collections(root: Path, settings: dict, corpus: list[dict], *, tenant_field: str | None = None) -> Path:
    """Collection ``a`` (the corpus) and ``b`` (rocks) in one store; returns the config file."""
    location = root / "store"
    extra = {"tenant_field": tenant_field} if tenant_field else {}
    cfg = load_config(env={}, location=str(location), **settings, **extra)
    opened = open_collections(cfg, ["a", "b"], must_exist=False)
    try:
        opened[0].ingest(corpus)
        opened[1].ingest(ROCKS)
    finally:
        close_all(opened)
    path = root / "m3r.toml"
    values = {"location": str(location), **settings, **extra}
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items()))
    return path


@pytest.fixture
def two_collections(tmp_path: Path, tiny_settings: dict, corpus_docs: list[dict]) -> Path:
    """A store of its own per test (the tests write)."""
    return seed_two_collections(tmp_path, tiny_settings, corpus_docs)


async def negotiate(session: ClientSession, version: str) -> None:
    """Open ``session`` at exactly ``version``: the initialize handshake offering it, or (a
    stateless revision) ``server/discover``."""
    if version in MODERN_PROTOCOL_VERSIONS:
        await session.discover()
    else:
        assert version in HANDSHAKE_PROTOCOL_VERSIONS
        params = types.InitializeRequestParams(
            protocol_version=version,
            capabilities=types.ClientCapabilities(),
            client_info=types.Implementation(name="m3retriever-tests", version="0"),
        )
        result = await session.send_request(types.InitializeRequest(params=params), types.InitializeResult)
        assert result.protocol_version == version
        session.adopt(result)
        await session.send_notification(types.InitializedNotification())
    assert session.protocol_version == version


@asynccontextmanager
async def session_at(config: Path, log: Path, version: str, *extra: str) -> AsyncIterator[ClientSession]:
    """A server subprocess over stdio, its session negotiated at ``version``."""
    env = {**SERVER_ENV, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = ["-m", "m3retriever_mcp", "--config", str(config), *extra]
    params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(config.parent))
    with open(log, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT) as session:
                await negotiate(session, version)
                yield session


async def call_ok(session: ClientSession, tool: str, args: dict, schemas: dict, **kwargs: Any) -> dict:
    result = await session.call_tool(tool, args, **kwargs)
    assert not result.is_error, _text(result)
    _validate(result.structured_content, schemas[tool])
    return result.structured_content


async def call_error(session: ClientSession, tool: str, args: dict) -> str:
    result = await session.call_tool(tool, args)
    assert result.is_error is True, args
    return _text(result)


async def check_collections(session: ClientSession, schemas: dict, tools: dict) -> None:
    out = await call_ok(session, "list_collections", {}, schemas)
    entries = {c["name"]: c for c in out["collections"]}
    assert [c["name"] for c in out["collections"]] == ["a", "b"]
    assert entries["a"]["default"] is True and entries["b"]["default"] is False
    assert entries["b"]["description"] == "Rocks and minerals" and entries["b"]["documents"] == 2
    assert all(c["writes"] is True for c in out["collections"])
    for name in ("search", "fetch", "collection_info", "ingest", "delete"):
        prop = tools[name].input_schema["properties"]["collection"]["anyOf"][0]
        assert prop["enum"] == ["a", "b"], name
        assert tools[name].input_schema["additionalProperties"] is False
    listed = json.loads((await session.read_resource("m3retriever://collections")).contents[0].text)
    assert listed == out
    info = json.loads((await session.read_resource(entries["b"]["info_uri"])).contents[0].text)
    assert info["collection"] == "b" and info["documents"] == 2
    templates = {t.uri_template for t in (await session.list_resource_templates()).resource_templates}
    assert {
        "m3retriever://{collection}/doc/{doc_id}",
        "m3retriever://{collection}/doc/{doc_id}/chunk/{chunk_index}",
    } <= templates
    message = await call_error(session, "search", {"query": "kiwi", "collection": "c"})
    assert "collection 'c' is not served here" in message and "'a', 'b'" in message


async def check_links_and_fetch(session: ClientSession, schemas: dict, corpus: list[dict]) -> None:
    result = await session.call_tool("search", {"query": "capital of France", "top_k": 3})
    assert not result.is_error, _text(result)
    links = [c for c in result.content if c.type == "resource_link"]
    hits = result.structured_content["hits"]
    assert [link.uri for link in links] == list(dict.fromkeys(h["uri"] for h in hits))
    texts = {d["doc_id"]: d for d in corpus}
    for hit in hits:
        whole = json.loads((await session.read_resource(hit["uri"])).contents[0].text)
        assert whole["text"] == texts[hit["doc_id"]]["text"] and whole["metadata"] == texts[hit["doc_id"]]["metadata"]
        chunk = json.loads((await session.read_resource(hit["chunk_uri"])).contents[0].text)
        assert chunk["text"] == hit["text"] and chunk["chunk_index"] == hit["chunk_index"]
        fetched = await call_ok(session, "fetch", {"doc_id": hit["doc_id"]}, schemas)
        assert fetched == whole and fetched["source"] == f"test://{hit['doc_id']}"

    # A long document of collection b, with an id that looks like a path: whole and by chunk.
    out = await call_ok(session, "search", {"query": "basalt columns", "collection": "b", "top_k": 5}, schemas)
    assert out["collection"] == "b" and {h["doc_id"] for h in out["hits"]} <= {d["doc_id"] for d in ROCKS}
    whole = await call_ok(session, "fetch", {"doc_id": "long/../report", "collection": "b"}, schemas)
    assert whole["text"] == LONG and whole["complete"] is True and len(whole["chunks"]) > 2
    assert whole["uri"] == "m3retriever://b/doc/long%2F..%2Freport"
    last = whole["chunks"][-1]
    part = await call_ok(
        session, "fetch", {"doc_id": "long/../report", "chunk_index": last["chunk_index"], "collection": "b"}, schemas
    )
    assert part["text"] == LONG[last["start"] : last["end"]] and LONG.endswith(part["text"])
    read = json.loads((await session.read_resource(part["uri"])).contents[0].text)
    assert read == part

    assert "no document 'paris'" in await call_error(session, "fetch", {"doc_id": "paris", "collection": "b"})
    assert "has no chunk 99" in await call_error(session, "fetch", {"doc_id": "paris", "chunk_index": 99})
    assert "chunk_index" in await call_error(session, "fetch", {"doc_id": "paris", "chunk_index": -1})


async def check_paging(session: ClientSession, schemas: dict, corpus_size: int) -> None:
    args = {"query": "capital city", "filter": {"year": {"gte": 1990}}}
    full = await call_ok(session, "search", {**args, "top_k": 50}, schemas)
    assert full["next_cursor"] is None and len(full["hits"]) == corpus_size
    pages, cursor = [], None
    while True:
        page = await call_ok(session, "search", {**args, "top_k": 5, **({"cursor": cursor} if cursor else {})}, schemas)
        assert page["offset"] == 5 * len(pages)
        pages.append(page["hits"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert page["next_cursor"] in _text_of(page)
    walked = [h for p in pages for h in p]
    assert [h["id"] for h in walked] == [h["id"] for h in full["hits"]]  # no overlap, no gap
    assert [h["scores"]["final_rank"] for h in walked] == list(range(1, corpus_size + 1))

    first = await call_ok(session, "search", {**args, "top_k": 2}, schemas)
    cursor = first["next_cursor"]
    more = await call_ok(session, "search", {**args, "top_k": 3, "cursor": cursor}, schemas)  # another page size
    assert [h["id"] for h in more["hits"]] == [h["id"] for h in full["hits"][2:5]]
    message = await call_error(session, "search", {"query": "other words", "cursor": cursor})
    assert "cursor belongs to a search with other arguments" in message
    message = await call_error(session, "search", {**args, "collection": "b", "cursor": cursor})
    assert "other arguments" in message
    forged = cursor[:-4] + ("AAAA" if not cursor.endswith("AAAA") else "BBBB")
    assert "cursor is not valid" in await call_error(session, "search", {**args, "cursor": forged})
    assert "cursor is not valid" in await call_error(session, "search", {**args, "cursor": "not-a-cursor"})


def _text_of(structured: dict) -> str:
    return json.dumps(structured)


async def check_progress(session: ClientSession, schemas: dict, version: str) -> None:
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    docs = [{"doc_id": f"{version}-{i}", "text": f"Mineral note {i}: feldspar and mica."} for i in range(25)]
    out = await call_ok(
        session, "ingest", {"documents": docs, "collection": "b"}, schemas, progress_callback=on_progress
    )
    assert out["added"] == 25
    assert len(updates) >= 2, updates  # several notifications while it ran, not one at the end
    assert [u[0] for u in updates] == sorted(u[0] for u in updates)
    assert updates[-1][:2] == (25.0, 25.0) and "documents" in (updates[-1][2] or "")
    got = await call_ok(session, "fetch", {"doc_id": f"{version}-7", "collection": "b"}, schemas)
    assert got["text"] == docs[7]["text"]
    # A doc_id twice: refused before anything is written.
    dup = [{"doc_id": "twice", "text": "one"}, *docs[:3], {"doc_id": "twice", "text": "two"}]
    assert "appears twice" in await call_error(session, "ingest", {"documents": dup, "collection": "b"})
    assert "no document 'twice'" in await call_error(session, "fetch", {"doc_id": "twice", "collection": "b"})
    # A document the library refuses, after others: the whole call is refused, nothing written.
    bad = [{"doc_id": f"{version}-new-{i}", "text": f"New note {i} on quartz."} for i in range(30)]
    bad.append({"doc_id": f"{version}-blank", "text": "   "})
    assert await call_error(session, "ingest", {"documents": bad, "collection": "b"})
    missing = await call_error(session, "fetch", {"doc_id": f"{version}-new-0", "collection": "b"})
    assert "no document" in missing


@pytest.mark.parametrize("version", REVISIONS)
async def test_agent_features_at_each_revision(
    version: str, two_collections: Path, corpus_docs: list[dict], tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    extra = ("--collections", "a,b", "--allow-writes", "--collection-description", "b=Rocks and minerals")
    try:
        with anyio.fail_after(SESSION_TIMEOUT):
            async with session_at(two_collections, log, version, *extra) as session:
                listed = (await session.list_tools()).tools
                tools = {t.name: t for t in listed}
                assert {"search", "fetch", "list_collections", "collection_info", "ingest", "delete"} <= set(tools)
                schemas = {t.name: t.output_schema for t in listed}
                await check_collections(session, schemas, tools)
                await check_links_and_fetch(session, schemas, corpus_docs)
                await check_paging(session, schemas, len(corpus_docs))
                await check_progress(session, schemas, version)
    except BaseException:
        print("server log:\n" + _log_tail(log))
        raise


def test_the_sdk_speaks_the_revisions_tested() -> None:
    assert set(REVISIONS) <= set(HANDSHAKE_PROTOCOL_VERSIONS) | set(MODERN_PROTOCOL_VERSIONS)
