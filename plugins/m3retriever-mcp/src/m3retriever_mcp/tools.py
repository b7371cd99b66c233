"""The MCP tools and the info resource of :class:`~m3retriever_mcp.server.M3RetrieverMCP`, one
registration function each.

The tool functions' signatures, with their ``Annotated``/``Field`` metadata, generate the
published JSON schemas; the SDK evaluates those annotations in this module's namespace. Each
function runs the retriever through ``_call``: a runner puts the call in a worker thread (reads
side by side, writes one at a time) and the library's errors become tool errors with their
message. ``_annotations`` gives every tool the same hints, a read's or a write's.
"""

from __future__ import annotations

from typing import Annotated, Any, Awaitable, Callable, Protocol, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from m3retriever import M3RetrieverError, Retriever
from m3retriever.plugin import MAX_ID_CHARS
from m3retriever_mcp.models import (
    CollectionInfo,
    DeleteOutput,
    Diversity,
    DocId,
    DocumentIn,
    FilterSpec,
    IngestOutput,
    MinScore,
    Query,
    SearchOutput,
    TopK,
    filter_to_mapping,
)
from m3retriever_mcp.summary import describe_pipeline, summarize

__all__ = [
    "MAX_TOP_K",
    "MAX_INGEST_DOCUMENTS",
    "INFO_RESOURCE_URI",
    "Runner",
    "register_search",
    "register_collection_info",
    "register_info_resource",
    "register_ingest",
    "register_delete",
]

T = TypeVar("T")

MAX_TOP_K = 50
MAX_INGEST_DOCUMENTS = 1000
INFO_RESOURCE_URI = "m3retriever://collection/info"


class Runner(Protocol):
    """Runs ``fn(*args, **kwargs)`` in a worker thread and returns its result."""

    def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Awaitable[T]: ...


def _annotations(title: str, *, writes: bool) -> ToolAnnotations:
    """A tool's hints: a read is read-only; a write may replace or remove documents (never
    anything else); every tool is idempotent and touches only the collection."""
    return ToolAnnotations(
        title=title,
        read_only_hint=not writes,
        destructive_hint=writes,
        idempotent_hint=True,
        open_world_hint=False,
    )


async def _call(
    run: Runner, fn: Callable[..., T], *args: Any, error: Callable[[str], Exception] = ToolError, **kwargs: Any
) -> T:
    """``fn(*args, **kwargs)`` run by ``run`` (in a worker thread), the library's errors raised
    as ``error`` (a tool error by default) with their message."""
    try:
        return await run(fn, *args, **kwargs)
    except M3RetrieverError as exc:
        # InputError/ConfigError (and the library's other deliberate errors) carry a message
        # that names the problem and the fix: hand it to the model as an isError result.
        raise error(str(exc)) from exc


def register_search(srv: MCPServer, r: Retriever, read: Runner, about: str) -> None:
    """Register the read-only ``search`` tool on ``srv``: ``r``'s search run by ``read``, with a
    text summary and structured output; ``about`` ends the description."""

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
    ) -> Annotated[CallToolResult, SearchOutput]:
        result = await _call(
            read,
            r.search,
            query,
            top_k=top_k,
            filter=filter_to_mapping(filter),
            min_score=min_score,
            max_per_doc=max_per_doc,
            mmr=mmr,
        )
        effective_min = min_score if min_score is not None else r.config.search.min_score
        out = SearchOutput(
            query=result.query,
            hits=[h.as_dict() for h in result.hits],  # type: ignore[misc]
            no_confident_match=result.no_confident_match,
            min_score=effective_min,
            timings_ms=dict(result.timings_ms),
        )
        return CallToolResult(
            content=[TextContent(type="text", text=summarize(result, effective_min))],
            structured_content=out.model_dump(mode="json"),
        )

    srv.add_tool(
        search,
        name="search",
        title="Search the document collection",
        description=(
            f"Search the collection '{r.collection}' for passages relevant to a query. "
            f"{describe_pipeline(r)} Returns the best passages with their text, source, doc_id, "
            "metadata and every stage's score; use `filter` to restrict by metadata and "
            "`min_score` to get no_confident_match=true instead of weak passages."
            + about
        ),
        annotations=_annotations("Search the document collection", writes=False),
    )


def register_collection_info(
    srv: MCPServer, r: Retriever, read: Runner, info: Callable[[], CollectionInfo], about: str
) -> None:
    """Register the read-only ``collection_info`` tool on ``srv``: ``info`` run by ``read``;
    ``about`` ends the description."""

    async def collection_info() -> CollectionInfo:
        return await _call(read, info)

    srv.add_tool(
        collection_info,
        name="collection_info",
        title="Collection information",
        description=(
            f"Counts (documents, chunks), disk size and models of the collection '{r.collection}'."
            + about
        ),
        annotations=_annotations("Collection information", writes=False),
    )


def register_info_resource(srv: MCPServer, read: Runner, info: Callable[[], CollectionInfo]) -> None:
    """Register the :data:`INFO_RESOURCE_URI` resource on ``srv``: ``info`` run by ``read``, as JSON."""

    @srv.resource(
        INFO_RESOURCE_URI,
        name="collection_info",
        title="Collection information",
        description="Counts, sizes and models of the collection, as JSON.",
        mime_type="application/json",
    )
    async def info_resource() -> str:
        result = await _call(read, info, error=ResourceError)
        return result.model_dump_json(indent=2)


def register_ingest(srv: MCPServer, r: Retriever, write: Runner, about: str) -> None:
    """Register the ``ingest`` tool on ``srv``: ``r``'s ingest run by ``write`` (adds or replaces
    documents); ``about`` ends the description."""

    async def ingest(
        documents: Annotated[
            list[DocumentIn],
            Field(
                min_length=1,
                max_length=MAX_INGEST_DOCUMENTS,
                description="Documents to add; a doc_id that exists already is replaced.",
            ),
        ],
    ) -> IngestOutput:
        docs = [d.model_dump() for d in documents]
        report = await _call(write, r.ingest, docs, show_progress=False)
        return IngestOutput(
            documents=report.documents,
            added=report.added,
            updated=report.updated,
            skipped=report.skipped,
            chunks_written=report.chunks_written,
            chunks_deleted=report.chunks_deleted,
            seconds=report.seconds,
        )

    srv.add_tool(
        ingest,
        name="ingest",
        title="Add documents",
        description=(
            f"Add documents to the collection '{r.collection}' (chunked and embedded). "
            "Re-adding a doc_id replaces that document; unchanged documents are skipped."
            + about
        ),
        annotations=_annotations("Add documents", writes=True),  # replaces documents with the same doc_id
    )


def register_delete(srv: MCPServer, r: Retriever, write: Runner) -> None:
    """Register the ``delete`` tool on ``srv``: ``r``'s delete run by ``write``, by doc_id and/or
    metadata filter (never everything)."""

    async def delete(
        doc_ids: Annotated[
            list[DocId] | None,
            Field(description=f"Ids of the documents to delete (each at most {MAX_ID_CHARS} characters)."),
        ] = None,
        filter: Annotated[
            FilterSpec | None, Field(description="Delete every document matching this filter.")
        ] = None,
    ) -> DeleteOutput:
        if not doc_ids and not filter:
            raise ToolError("pass doc_ids and/or a filter; refusing to delete everything")
        n = await _call(write, r.delete, doc_ids or None, filter=filter_to_mapping(filter))
        return DeleteOutput(deleted_chunks=n)

    srv.add_tool(
        delete,
        name="delete",
        title="Delete documents",
        description=(
            f"Delete documents from the collection '{r.collection}' by doc_id and/or metadata "
            "filter (both given: documents matching both). Returns the number of chunks removed."
        ),
        annotations=_annotations("Delete documents", writes=True),
    )
