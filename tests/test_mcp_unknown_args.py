"""Unknown tool arguments are refused, never dropped.

A server confined to one tenant, driven by the real ``mcp`` client over stdio: a ``delete`` that
also names ``"tenant": "globex"`` used to have that argument silently dropped and deleted the
caller's own documents. Every tool now publishes ``additionalProperties: false`` and a call with
an argument it does not know is an ``isError`` result naming that argument and the accepted ones,
and changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("m3retriever_mcp")
pytest.importorskip("mcp")

from mcp import Client  # noqa: E402

from m3retriever_mcp import create_server  # noqa: E402
from test_adapter_mcp import SESSION_TIMEOUT, _log_tail, _seed_store, _text, _tools  # noqa: E402
from test_mcp_tenant import stdio_session  # noqa: E402

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # servers in subprocesses

DOCS = [
    {"doc_id": "a1", "text": "Kiwi and mango grow in the acme orchard.", "metadata": {"tenant": "acme", "lang": "en"}},
    {"doc_id": "a2", "text": "Papaya harvest notes from acme.", "metadata": {"tenant": "acme", "lang": "en"}},
    {"doc_id": "g1", "text": "Kiwi prices at globex markets.", "metadata": {"tenant": "globex", "lang": "en"}},
]

# One call per tool, each with an argument the tool does not have.
UNKNOWN: dict[str, tuple[dict[str, Any], str]] = {
    "search": ({"query": "kiwi", "tenant": "globex"}, "accepts: query, top_k, filter, min_score, max_per_doc, mmr"),
    "collection_info": ({"verbose": True}, "accepts: collection"),
    "list_collections": ({"verbose": True}, "takes no arguments"),
    "fetch": ({"doc_id": "a1", "tenant": "globex"}, "accepts: doc_id, chunk_index, collection"),
    "ingest": ({"documents": [{"doc_id": "a9", "text": "Guava."}], "tenant": "globex"}, "accepts: documents"),
    "delete": ({"filter": {"lang": "en"}, "tenant": "globex"}, "accepts: doc_ids, filter"),
}


def _walk_objects(schema: Any) -> list[dict]:
    """Every object schema with properties in ``schema`` (the top level, $defs, nested)."""
    found: list[dict] = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


async def test_unknown_arguments_are_refused_and_delete_nothing(tmp_path: Path, tiny_settings: dict) -> None:
    config = _seed_store(tmp_path, {**tiny_settings, "tenant_field": "tenant"}, DOCS)
    log = tmp_path / "unknown-args-server.log"
    try:
        with anyio.fail_after(SESSION_TIMEOUT):
            async with stdio_session(config, log, "--tenant", "acme", "--allow-writes") as session:
                tools = await _tools(session)
                assert set(tools) == set(UNKNOWN)
                # Meta-test: every tool, as the client lists it, is closed to unknown arguments.
                for name, tool in tools.items():
                    assert tool.input_schema.get("additionalProperties") is False, (name, tool.input_schema)
                # ...and so is every object in its arguments (documents, filter conditions).
                ingest_objects = _walk_objects(tools["ingest"].input_schema)
                assert len(ingest_objects) >= 2
                assert all(o.get("additionalProperties") is False for o in ingest_objects)

                before = (await session.call_tool("collection_info", {})).structured_content
                assert before["documents"] == 2
                for name, (args, accepted) in UNKNOWN.items():
                    result = await session.call_tool(name, args)
                    text = _text(result)
                    assert result.is_error is True, (name, text)
                    unknown = next(k for k in args if k not in tools[name].input_schema["properties"])
                    assert f"unknown argument '{unknown}'" in text, text
                    assert accepted in text, text
                    assert "Extra inputs are not permitted" not in text

                after = (await session.call_tool("collection_info", {})).structured_content
                assert after["documents"] == before["documents"] and after["points"] == before["points"]
                # The same call without the unknown argument still works (and stays in the tenant).
                result = await session.call_tool("delete", {"filter": {"lang": "en"}})
                assert not result.is_error, _text(result)
                assert result.structured_content["deleted_chunks"] == before["points"]
    except BaseException:
        print("server log:\n" + _log_tail(log))
        raise


async def test_unknown_nested_field_names_the_field(make_retriever) -> None:
    adapter = create_server(make_retriever(), writes=True)
    with anyio.fail_after(60):
        async with Client(adapter.server) as client:
            doc = {"doc_id": "d", "text": "t", "tenant": "globex"}
            result = await client.call_tool("ingest", {"documents": [doc]})
            text = _text(result)
            assert result.is_error is True
            assert "documents[0].tenant: unknown field" in text, text
            assert "doc_id, text, metadata, source" in text, text
            info = (await client.call_tool("collection_info", {})).structured_content
            assert info["documents"] == 0
