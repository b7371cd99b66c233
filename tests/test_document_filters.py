"""Filters on what a folder ingest stores: ``folders`` (the folders a file lies in), ``suffix``
and ``title``, through Retriever.search, the CLI, the LangChain and LlamaIndex adapters and the
MCP search tool, over a real folder read by the real readers into a real embedded store."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m3retriever import InputError, parse_filter
from m3retriever.ingest.document_fields import folders_of
from m3retriever.ingest.roots import INGEST_ROOTS
from m3retriever.types import Document

FILES = {
    "README.md": "# Overview\n\nWhat the project does and where to start.\n",
    "notes.txt": "Loose notes about the release plan.\n",
    "guide/intro.md": "# Getting started\n\nInstall the package and run the first search.\n",
    "guide/api/auth.md": "# Authentication\n\nTokens are passed in a header.\n",
    "guide/api/limits.txt": "Rate limits: one hundred requests a minute.\n",
    "guide/api/deep er/ünïcode.d/x.markdown": "# Deep page\n\nA page far down the tree.\n",
    "blog/2024/launch.md": "# Launch day\n\nWe shipped the first version.\n",
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def ingested(make_retriever, folder: Path):
    r = make_retriever()
    report = r.ingest_path(folder)
    assert report.added == len(FILES)
    return r


def _found(r, flt) -> set[str]:
    return {h.doc_id for h in r.search("page", top_k=50, filter=flt).hits}


CASES = [
    ({"folders": "guide"}, {n for n in FILES if n.startswith("guide/")}),
    ({"folders": "guide/api"}, {n for n in FILES if n.startswith("guide/api/")}),
    ({"folders": "guide/api/deep er/ünïcode.d"}, {"guide/api/deep er/ünïcode.d/x.markdown"}),
    ({"folders": {"any": ["blog", "guide/api"]}}, {n for n in FILES if n.startswith(("blog/", "guide/api/"))}),
    ({"folders": {"not": "guide"}}, {"README.md", "notes.txt", "blog/2024/launch.md"}),
    ({"suffix": ".txt"}, {"notes.txt", "guide/api/limits.txt"}),
    (
        {"suffix": {"any": [".md", ".markdown"]}, "folders": "guide"},
        {"guide/intro.md", "guide/api/auth.md", "guide/api/deep er/ünïcode.d/x.markdown"},
    ),
    ({"title": "Authentication"}, {"guide/api/auth.md"}),
    ({"title": {"any": ["Overview", "Launch day"]}}, {"README.md", "blog/2024/launch.md"}),
]


@pytest.mark.parametrize(("flt", "expected"), CASES)
def test_retriever_search_filters_by_folder_suffix_and_title(ingested, flt, expected):
    assert _found(ingested, flt) == expected


def test_stored_fields(ingested):
    hit = next(h for h in ingested.search("tokens", top_k=50).hits if h.doc_id == "guide/api/auth.md")
    assert hit.metadata["folders"] == ["guide", "guide/api"]
    assert (hit.metadata["suffix"], hit.metadata["title"], hit.metadata["file_name"]) == (
        ".md",
        "Authentication",
        "auth.md",
    )
    top = next(h for h in ingested.search("notes", top_k=50).hits if h.doc_id == "notes.txt")
    assert top.metadata["folders"] == [] and "title" not in top.metadata


@pytest.mark.parametrize("bad", ["guide/", "./guide", "/guide", "guide//api", ".", ""])
def test_folders_written_otherwise_are_refused_with_the_fix(ingested, bad):
    with pytest.raises(InputError, match="'/' between names"):
        ingested.search("x", filter={"folders": bad})
    with pytest.raises(InputError, match="'/' between names"):
        parse_filter({"folders": {"any": ["guide", bad]}})


def test_cli_search_filter(ingested, folder, tmp_path, tiny_settings, capsys):
    from m3retriever.cli import main

    ingested.close()  # one process at a time holds an embedded store
    config = tmp_path / "m3r.toml"
    values = {"location": str(tmp_path / "store"), **tiny_settings}  # where make_retriever put it
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    flt = json.dumps({"folders": "guide/api", "suffix": ".md"})
    assert main(["search", "page", "--config", str(config), "--json", "-k", "20", "--filter", flt]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {h["doc_id"] for h in data["hits"]} == {"guide/api/auth.md"}


def test_langchain_filter(ingested):
    pytest.importorskip("m3retriever_langchain")
    from m3retriever_langchain import M3RetrieverLangChain

    lc = M3RetrieverLangChain(retriever=ingested, filter={"folders": "guide"})
    docs = lc.invoke("page", k=20, filter={"suffix": ".txt"})  # ANDed with the folder
    assert [d.metadata["doc_id"] for d in docs] == ["guide/api/limits.txt"]


def test_llamaindex_filter(ingested):
    pytest.importorskip("m3retriever_llamaindex")
    from m3retriever_llamaindex import M3RetrieverLlamaIndex

    li = M3RetrieverLlamaIndex(ingested, top_k=20, filter={"title": "Getting started"})
    assert [n.node.metadata["doc_id"] for n in li.retrieve("page")] == ["guide/intro.md"]


def test_a_folder_ingested_before_the_fields_gets_a_warning_naming_the_fix(ingested, folder, caplog):
    roots = ingested.store.metadata(ingested.collection)[INGEST_ROOTS]
    assert roots[-1]["document_fields"] == 1
    old = [{k: v for k, v in e.items() if k != "document_fields"} for e in roots]  # as older versions wrote it
    ingested.store.set_metadata(ingested.collection, {INGEST_ROOTS: old})
    with caplog.at_level(logging.WARNING, logger="m3retriever.ingest"):
        ingested.search("x", filter={"suffix": ".md"})  # stored by every version: no warning
        assert not caplog.records
        ingested.search("x", filter={"folders": "guide"})
    assert any("ingest that folder again" in r.getMessage() and str(folder) in r.getMessage() for r in caplog.records)
    report = ingested.ingest_path(folder)  # the fix: the root is recorded with the fields again
    assert report.added == 0
    assert ingested.store.metadata(ingested.collection)[INGEST_ROOTS][-1]["document_fields"] == 1


def _as_read_before(folder: Path) -> list[Document]:
    """The folder's documents exactly as read_folder produced them before the document fields
    (no folders, no Markdown title)."""
    return [
        Document(
            text=(folder / name).read_text(encoding="utf-8"),
            doc_id=name,
            metadata={"file_name": Path(name).name, "suffix": Path(name).suffix},
            source=name,
        )
        for name in FILES
    ]


def test_a_collection_from_an_earlier_version_gets_the_fields_on_re_ingest_without_encoding(make_retriever, folder):
    """Documents stored as an earlier version stored them (no folders, no Markdown title) get
    the fields in place on a re-ingest of the folder: nothing encoded, all skipped as unchanged."""
    r = make_retriever()
    r.ingest(_as_read_before(folder))
    chunks = r.count()
    assert _found(r, {"folders": "guide"}) == set()
    report = r.ingest_path(folder)
    assert (report.skipped, report.added, report.updated, report.chunks_written) == (len(FILES), 0, 0, 0)
    assert r.count() == chunks
    for flt, expected in CASES:
        assert _found(r, flt) == expected, flt
    assert r.ingest_path(folder).skipped == len(FILES)  # and unchanged from then on


def test_a_tenant_s_re_ingest_adds_the_fields_to_its_own_documents_only(make_retriever, folder, tiny_settings):
    r = make_retriever(**{**tiny_settings, "tenant_field": "tenant"})
    acme, globex = r.scoped("acme"), r.scoped("globex")
    for scoped in (acme, globex):
        scoped.ingest(_as_read_before(folder))
    report = acme.ingest_path(folder)
    assert (report.skipped, report.chunks_written) == (len(FILES), 0)
    assert _found(acme, {"folders": "guide/api"}) == {n for n in FILES if n.startswith("guide/api/")}
    assert _found(globex, {"folders": "guide"}) == set()  # globex's documents untouched
    assert _found(globex, {"suffix": ".txt"}) == {"notes.txt", "guide/api/limits.txt"}


_NAME = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=12
).filter(lambda s: s not in (".", ".."))


@given(st.lists(_NAME, min_size=1, max_size=12))
def test_folders_of_odd_paths(parts):
    source = "/".join(parts)
    folders = folders_of(source)
    assert len(folders) == len(parts) - 1
    assert all(source.startswith(f + "/") for f in folders)
    assert all(b.startswith(a + "/") for a, b in zip(folders, folders[1:]))
    assert [f.rsplit("/", 1)[-1] for f in folders] == parts[:-1]
    for f in folders:  # every stored folder is accepted by the filter as it is
        assert parse_filter({"folders": f}) is not None


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.anyio
async def test_mcp_search_tool_filter(ingested, tmp_path, tiny_settings):
    pytest.importorskip("m3retriever_mcp")
    pytest.importorskip("mcp")
    import anyio

    from test_adapter_mcp import SESSION_TIMEOUT, _search, _tools, stdio_session

    ingested.close()  # the server process opens the store
    config = tmp_path / "m3r.toml"
    values = {"location": str(tmp_path / "store"), **tiny_settings}
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    with anyio.fail_after(SESSION_TIMEOUT):
        async with stdio_session(config, tmp_path / "server.log") as session:
            tools = await _tools(session)
            args = {"query": "page", "top_k": 20, "filter": {"folders": "blog", "title": "Launch day"}}
            out = await _search(session, tools, args)
            assert [h["doc_id"] for h in out["hits"]] == ["blog/2024/launch.md"]
            out = await _search(session, tools, {"query": "page", "top_k": 20, "filter": {"suffix": ".markdown"}})
            assert [h["doc_id"] for h in out["hits"]] == ["guide/api/deep er/ünïcode.d/x.markdown"]
