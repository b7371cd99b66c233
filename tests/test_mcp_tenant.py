"""An MCP server started for one tenant (``python -m m3retriever_mcp --tenant acme``), driven by
the real ``mcp`` client over stdio: every tool sees and writes that tenant only, whatever the
caller passes, and the search tool's diversity arguments are published with their limits."""

from __future__ import annotations

import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import anyio
import pytest

pytest.importorskip("m3retriever_mcp")
pytest.importorskip("mcp")

from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

from test_adapter_mcp import (  # noqa: E402
    CALL_TIMEOUT,
    SERVER_ENV,
    SESSION_TIMEOUT,
    _log_tail,
    _search,
    _seed_store,
    _server_args,
    _text,
    _tools,
)

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # servers in subprocesses


@asynccontextmanager
async def stdio_session(config: Path, log: Path, *extra: str) -> AsyncIterator[ClientSession]:
    """A real server subprocess over stdio that imports the packages this test imports."""
    env = {**SERVER_ENV, "PYTHONPATH": os.pathsep.join(sys.path)}
    params = StdioServerParameters(command=sys.executable, args=_server_args(config, *extra), env=env, cwd=str(config.parent))
    with open(log, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT) as session:
                await session.initialize()
                yield session

DOCS = {
    "acme": [("a1", "Kiwi and mango grow in the acme orchard."), ("a2", "Papaya harvest notes from acme.")],
    "globex": [("g1", "Kiwi prices at globex markets."), ("g2", "Granite and basalt in the globex quarry.")],
}


async def test_server_scoped_to_one_tenant(tmp_path: Path, tiny_settings: dict) -> None:
    settings = {**tiny_settings, "tenant_field": "tenant"}
    # The seed store holds both tenants (stamped by their metadata, written unscoped).
    docs = [{"doc_id": d, "text": t, "metadata": {"tenant": tenant}} for tenant, rows in DOCS.items() for d, t in rows]
    config = _seed_store(tmp_path, settings, docs)
    log = tmp_path / "tenant-server.log"
    try:
        with anyio.fail_after(SESSION_TIMEOUT):
            async with stdio_session(config, log, "--tenant", "acme", "--allow-writes") as session:
                tools = await _tools(session)
                props = tools["search"].input_schema["properties"]
                assert "tenant" not in props  # nothing a caller passes names the tenant
                assert props["max_per_doc"]["anyOf"][0]["maximum"] == 50
                mmr = props["mmr"]["anyOf"][0]
                assert mmr["minimum"] == 0.0 and mmr["maximum"] == 1.0

                out = await _search(session, tools, {"query": "kiwi", "top_k": 10})
                assert {h["doc_id"] for h in out["hits"]} == {"a1", "a2"}
                # A filter on the tenant field naming another tenant returns nothing.
                out = await _search(session, tools, {"query": "kiwi", "filter": {"tenant": "globex"}})
                assert out["hits"] == []
                out = await _search(session, tools, {"query": "kiwi", "filter": {"tenant": {"any": ["globex", "acme"]}}})
                assert {h["doc_id"] for h in out["hits"]} == {"a1", "a2"}

                out = await _search(session, tools, {"query": "kiwi", "max_per_doc": 1, "mmr": 0.5})
                assert [h["scores"]["relevance_rank"] is not None for h in out["hits"]] == [True, True]
                for bad in ({"mmr": 1.5}, {"max_per_doc": 0}, {"mmr": "high"}):
                    result = await session.call_tool("search", {"query": "kiwi", **bad})
                    assert result.is_error is True, bad

                # Writes land in the tenant; a document naming another tenant is refused.
                result = await session.call_tool("ingest", {"documents": [{"doc_id": "a3", "text": "Guava jam."}]})
                assert not result.is_error, _text(result)
                bad_doc = {"doc_id": "a4", "text": "Quartz.", "metadata": {"tenant": "globex"}}
                result = await session.call_tool("ingest", {"documents": [bad_doc]})
                assert result.is_error is True and "scoped to tenant 'acme'" in _text(result)
                result = await session.call_tool("delete", {"filter": {"tenant": "globex"}})
                assert result.structured_content["deleted_chunks"] == 0
                result = await session.call_tool("delete", {"doc_ids": ["g1"]})
                assert result.structured_content["deleted_chunks"] == 0
                info = (await session.call_tool("collection_info", {})).structured_content
                assert info["tenant"] == "acme" and info["documents"] == 3
    except BaseException:
        print("server log:\n" + _log_tail(log))
        raise
