"""The ``search`` tool: hybrid search of a served collection, a page at a time, each hit with
resource links to its document and chunk.

Paging: every page of one search is cut from the same ranking, the search run with ``top_k``
set to the ranking's depth (:func:`ranking_depth`: the rerank depth in force, at least the
page, at most :data:`MAX_DEPTH`), so pages neither overlap nor skip a hit while the collection
does not change. A page past the first runs the search again (nothing is kept on the server);
its cursor (:mod:`.cursor`) says where it starts and which search it belongs to.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ContentBlock, TextContent
from pydantic import Field, StrictStr

from m3retriever import InputError, Retriever, SearchResult
from m3retriever_mcp.cursor import MAX_CURSOR_CHARS, Cursors, Page, search_digest
from m3retriever_mcp.links import chunk_uri, doc_uri, document_link
from m3retriever_mcp.models import (
    CollectionName,
    Diversity,
    FilterSpec,
    MinScore,
    Query,
    SearchOutput,
    TopK,
    filter_to_mapping,
)
from m3retriever_mcp.served import ServedCollections
from m3retriever_mcp.summary import describe_pipeline, summarize
from m3retriever_mcp.tools import (
    MAX_TOP_K,
    Runner,
    about_collections,
    call,
    pick,
    publish_collection_names,
    tool_annotations,
)

__all__ = ["MAX_DEPTH", "ranking_depth", "register_search"]

MAX_DEPTH = 200
"""Most hits one search pages through."""

Cursor = Annotated[
    StrictStr,
    Field(
        description=(
            "next_cursor of the previous page, to get the next one; give the same query, filter, "
            "min_score, max_per_doc, mmr and collection as that search."
        ),
        json_schema_extra={"minLength": 1, "maxLength": MAX_CURSOR_CHARS},
    ),
]


def ranking_depth(r: Retriever, top_k: int) -> int:
    """Hits of the ranking a search's pages are cut from: the rerank depth in force (the
    reranker reads that many candidates anyway), at least ``top_k``, at most :data:`MAX_DEPTH`."""
    return max(top_k, min(MAX_DEPTH, r.settings.search.rerank_depth))


def _page(cursors: Cursors, cursor: str | None, digest: str, depth: int) -> Page:
    if cursor is None:
        return Page(offset=0, depth=depth)
    try:
        return cursors.read(cursor, digest)
    except InputError as exc:
        raise ToolError(str(exc)) from exc


def _output(
    collection: str, result: SearchResult, page: Page, next_cursor: str | None, min_score: float | None
) -> SearchOutput:
    hits = []
    for h in result.hits:
        hit: dict[str, Any] = h.as_dict()
        hit["uri"] = doc_uri(collection, h.doc_id)
        hit["chunk_uri"] = chunk_uri(collection, h.doc_id, h.chunk_index)
        hits.append(hit)
    return SearchOutput(
        query=result.query,
        collection=collection,
        hits=hits,  # type: ignore[arg-type]
        offset=page.offset,
        next_cursor=next_cursor,
        no_confident_match=result.no_confident_match,
        min_score=min_score,
        timings_ms=dict(result.timings_ms),
        branch_weights=dict(result.branch_weights),
    )


def _content(
    collection: str, result: SearchResult, min_score: float | None, next_cursor: str | None
) -> list[ContentBlock]:
    """The text summary, then a link to each document of the page (once per document)."""
    text = summarize(result, min_score)
    if next_cursor is not None:
        text += f"\n\nMore results: call search again with the same arguments and cursor={next_cursor!r}."
    blocks: list[ContentBlock] = [TextContent(type="text", text=text)]
    seen: set[str] = set()
    for h in result.hits:
        if h.doc_id not in seen:
            seen.add(h.doc_id)
            blocks.append(document_link(collection, h.doc_id, h.source))
    return blocks


def register_search(srv: MCPServer, collections: ServedCollections, read: Runner, cursors: Cursors) -> None:
    """Register the read-only ``search`` tool on ``srv``: a served collection's search run by
    ``read``, a page at a time (cursors from ``cursors``), with a text summary, resource links
    and structured output."""

    async def search(
        query: Query,
        top_k: Annotated[TopK, Field(le=MAX_TOP_K)] = 5,
        filter: Annotated[FilterSpec | None, Field(description="Optional metadata filter.")] = None,
        min_score: Annotated[
            MinScore | None,
            Field(
                description=(
                    "Optional minimum calibrated relevance (0..1) a passage needs; when none "
                    "reaches it, no passages are returned and no_confident_match is true."
                ),
            ),
        ] = None,
        max_per_doc: Annotated[
            TopK | None,
            Field(le=MAX_TOP_K, description="Optional: at most this many passages of one document."),
        ] = None,
        mmr: Annotated[
            Diversity | None,
            Field(
                description=(
                    "Optional diversity (0..1): 0 orders by relevance only, higher values prefer "
                    "passages unlike those already returned."
                ),
            ),
        ] = None,
        collection: CollectionName | None = None,
        cursor: Cursor | None = None,
    ) -> Annotated[CallToolResult, SearchOutput]:
        served = pick(collections, collection)
        r = served.retriever
        flt = filter_to_mapping(filter)
        digest = search_digest(
            collection=served.name, query=query, filter=flt, min_score=min_score, max_per_doc=max_per_doc, mmr=mmr
        )
        page = _page(cursors, cursor, digest, ranking_depth(r, top_k))
        result = await call(
            read, r.search, query, top_k=page.depth, filter=flt, min_score=min_score, max_per_doc=max_per_doc, mmr=mmr
        )
        end = page.offset + top_k
        next_cursor = cursors.make(digest, Page(end, page.depth)) if len(result.hits) > end else None
        shown = replace(result, hits=result.hits[page.offset : end])
        effective_min = min_score if min_score is not None else r.config.search.min_score
        out = _output(served.name, shown, page, next_cursor, effective_min)
        return CallToolResult(
            content=_content(served.name, shown, effective_min, next_cursor),
            structured_content=out.model_dump(mode="json"),
        )

    default = collections.default.retriever
    srv.add_tool(
        search,
        name="search",
        title="Search the document collection",
        description=(
            f"Search a collection (default {default.collection!r}) for passages relevant to a query. "
            f"{describe_pipeline(default)} Returns the best passages with their text, source, doc_id, "
            "metadata, every stage's score and resource links (uri: the whole document, chunk_uri: "
            "the passage; read them with fetch or resources/read); use `filter` to restrict by "
            "metadata, `min_score` to get no_confident_match=true instead of weak passages, and "
            "`cursor` (next_cursor of a result) for more results." + about_collections(collections)
        ),
        annotations=tool_annotations("Search the document collection", writes=False),
    )
    publish_collection_names(srv, "search", collections.names)
