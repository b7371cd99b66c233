"""Fuzzing the Python API with hypothesis: random documents, metadata, filters and search options.

Whatever is sent, the only exceptions are the library's own, a rejected call leaves the store's
count unchanged, and the collection still opens and searches afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from m3retriever import Retriever, load_config
from m3retriever.errors import M3RetrieverError
from strategies import any_text, documents, filters, options

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

@pytest.fixture(scope="module")
def fuzz_retriever(tmp_path_factory: pytest.TempPathFactory, tiny_settings: dict, corpus_docs: list[dict]):
    location = str(tmp_path_factory.mktemp("fuzz") / "store")
    r = Retriever(load_config(env={}, location=location, **tiny_settings))
    r.ingest(corpus_docs)
    yield r, location
    r.close()


def _still_works(r: Retriever) -> None:
    assert r.search("vector database", top_k=3, rerank=False).hits


@FUZZ
@given(docs=st.lists(documents, min_size=1, max_size=3))
def test_fuzz_ingest(fuzz_retriever, docs: list[dict]) -> None:
    r, _ = fuzz_retriever
    before = r.count()
    try:
        r.ingest(docs)
    except M3RetrieverError:
        assert r.count() == before  # a rejected list writes nothing
    _still_works(r)


@FUZZ
@given(query=st.one_of(any_text, st.none(), st.integers()), flt=filters, opts=options)
def test_fuzz_search(fuzz_retriever, query: Any, flt: Any, opts: dict) -> None:
    r, _ = fuzz_retriever
    before = r.count()
    try:
        result = r.search(query, filter=flt, **opts)
    except M3RetrieverError:
        pass
    else:
        assert all(h.scores.final_rank == i for i, h in enumerate(result.hits, 1))
    assert r.count() == before


@FUZZ
@given(flt=filters)
def test_fuzz_count_and_delete(fuzz_retriever, flt: Any) -> None:
    r, _ = fuzz_retriever
    try:
        r.count(flt)
    except M3RetrieverError:
        before = r.count()
        with pytest.raises(M3RetrieverError):
            r.delete(filter=flt)  # the same filter is refused by delete too
        assert r.count() == before


# -- the MCP tools -------------------------------------------------------------------------------
def _json_safe(value: Any) -> bool:
    """Arguments an MCP client can send at all: JSON without NaN, and no deeper than the
    client's own serializer goes (pydantic refuses nesting past its depth limit before anything
    is sent, so such arguments never reach a server; the server's handling of JSON nested past
    its parser's limit is tested on the raw stdio stream in test_mcp_hardening.py)."""
    import json

    import pydantic_core

    try:
        json.dumps(value, allow_nan=False).encode("utf-8")
        # The request wraps the arguments in a few levels (params, arguments, ...).
        pydantic_core.to_json({"a": {"b": {"c": {"d": value}}}})
    except (TypeError, ValueError):
        return False
    return True


mcp_search_args = st.fixed_dictionaries(
    {},
    optional={
        "query": st.one_of(any_text, st.integers(), st.none()),
        "top_k": st.one_of(st.integers(-5, 10**20), st.floats(), st.text(max_size=3), st.booleans()),
        "filter": filters,
        "min_score": st.one_of(st.floats(), st.text(max_size=3), st.none()),
        "topk": st.integers(),
    },
).filter(_json_safe)
mcp_ingest_args = st.fixed_dictionaries(
    {"documents": st.one_of(st.lists(documents, max_size=2), any_text)}
).filter(_json_safe)


def _deep(levels: int) -> dict:
    value: dict = {"k": 1}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(calls=st.lists(st.one_of(mcp_search_args.map(lambda a: ("search", a)), mcp_ingest_args.map(lambda a: ("ingest", a))), min_size=15, max_size=15))
# a case CI drew: metadata one level too deep is refused with the library's message
@example(calls=[("search", {}), ("ingest", {"documents": [{"doc_id": "0", "text": "0", "metadata": {"deep": _deep(16)}}]})])
def test_fuzz_mcp_tools(fuzz_retriever, calls: list[tuple[str, dict]]) -> None:
    """Random arguments to the MCP tools (writes enabled) through a real client session: every
    call ends as a result, an error result carries a readable message, a refused ingest
    writes nothing, and the server keeps answering."""
    import anyio
    from mcp import Client

    from m3retriever_mcp import create_server

    r, _ = fuzz_retriever
    adapter = create_server(r, writes=True)

    async def run() -> None:
        async with Client(adapter.server) as client:
            for name, args in calls:
                before = r.count()
                with anyio.fail_after(60):
                    result = await client.call_tool(name, args)
                text = " ".join(getattr(c, "text", "") for c in result.content)
                if result.is_error:
                    # a refusal names the problem: the SDK puts "Error executing tool <name>: "
                    # before a deliberate error's own message, and only a bare prefix says nothing
                    detail = text.strip().removeprefix(f"Error executing tool {name}").lstrip(":").strip()
                    assert detail, text
                    assert "Traceback" not in text
                    assert r.count() == before
            info = await client.call_tool("collection_info", {})
            assert not info.is_error

    anyio.run(run)
    _still_works(r)


def test_the_fuzzed_collection_reopens(fuzz_retriever, tiny_settings: dict) -> None:
    r, location = fuzz_retriever
    n = r.count()
    r.close()
    again = Retriever(load_config(env={}, location=location, **tiny_settings))
    try:
        assert again.count() == n
        _still_works(again)
        assert Path(location).is_dir()
    finally:
        again.close()
