"""The MCP tools ``collection_info``, ``ingest`` and ``delete``, the info resource, and what every
tool shares (``search`` is in :mod:`.searching`, ``fetch`` and ``list_collections`` in
:mod:`.reading`), one registration function each.

The tool functions' signatures, with their ``Annotated``/``Field`` metadata, generate the
published JSON schemas; the SDK evaluates those annotations in the defining module's namespace.
Each function runs the retriever through :func:`call`: a runner puts the call in a worker
thread (reads side by side, writes one at a time) and the library's errors become tool errors
with their message. :func:`tool_annotations` gives every tool the same hints, a read's or a
write's; :func:`pick` turns a ``collection`` argument into a served collection.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Awaitable, Callable, Protocol, Sequence, TypeVar

import anyio.from_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from m3retriever import IngestReport, InputError, M3RetrieverError, Retriever
from m3retriever.plugin import MAX_ID_CHARS
from m3retriever_mcp.models import (
    CollectionInfo,
    CollectionName,
    DeleteOutput,
    DocId,
    DocumentIn,
    FilterSpec,
    IngestOutput,
    filter_to_mapping,
)
from m3retriever_mcp.served import Served, ServedCollections

__all__ = [
    "MAX_TOP_K",
    "MAX_INGEST_DOCUMENTS",
    "INFO_RESOURCE_URI",
    "Runner",
    "call",
    "pick",
    "tool_annotations",
    "publish_collection_names",
    "about_collections",
    "register_collection_info",
    "register_info_resource",
    "register_ingest",
    "register_delete",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_TOP_K = 50
MAX_INGEST_DOCUMENTS = 1000
INFO_RESOURCE_URI = "m3retriever://collection/info"


class Runner(Protocol):
    """Runs ``fn(*args, **kwargs)`` in a worker thread and returns its result."""

    def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Awaitable[T]: ...


def tool_annotations(title: str, *, writes: bool) -> ToolAnnotations:
    """A tool's hints: a read is read-only; a write may replace or remove documents (never
    anything else); every tool is idempotent and touches only the collection."""
    return ToolAnnotations(
        title=title,
        read_only_hint=not writes,
        destructive_hint=writes,
        idempotent_hint=True,
        open_world_hint=False,
    )


async def call(
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


def pick(collections: ServedCollections, name: str | None, error: Callable[[str], Exception] = ToolError) -> Served:
    """The served collection ``name`` (``None``: the default), or ``error`` listing the names."""
    try:
        return collections.get(name)
    except InputError as exc:
        raise error(str(exc)) from exc


def publish_collection_names(srv: MCPServer, tool: str, names: Sequence[str]) -> None:
    """List the served collections as the ``enum`` of ``tool``'s ``collection`` argument (published
    only: :func:`pick` decides, so its message is what the agent reads)."""
    registered = srv._tool_manager.get_tool(tool)  # noqa: SLF001 - the schema the SDK publishes
    if registered is None:
        return
    prop = registered.parameters.get("properties", {}).get("collection")
    if isinstance(prop, dict):
        for branch in prop.get("anyOf", [prop]):
            if branch.get("type") == "string":
                branch["enum"] = list(names)


def about_collections(collections: ServedCollections) -> str:
    """What the tool descriptions add: the served collections and what each holds."""
    if len(collections) == 1:
        d = collections.default.description
        return f"\n\nThe collection holds: {d}" if d else ""
    lines = [f"\n\nCollections (argument `collection`; default {collections.default.name!r}):"]
    for s in collections:
        lines.append(f"- {s.name}" + (f": {s.description}" if s.description else ""))
    return "\n".join(lines)


def register_collection_info(
    srv: MCPServer, collections: ServedCollections, read: Runner, info: Callable[[Served], CollectionInfo]
) -> None:
    """Register the read-only ``collection_info`` tool on ``srv``: ``info`` of the named (or the
    default) collection, run by ``read``."""

    async def collection_info(collection: CollectionName | None = None) -> CollectionInfo:
        return await call(read, info, pick(collections, collection))

    srv.add_tool(
        collection_info,
        name="collection_info",
        title="Collection information",
        description=(
            f"Counts (documents, chunks), disk size and models of a collection (default "
            f"{collections.default.name!r})." + about_collections(collections)
        ),
        annotations=tool_annotations("Collection information", writes=False),
    )
    publish_collection_names(srv, "collection_info", collections.names)


def register_info_resource(
    srv: MCPServer, served: Served, read: Runner, info: Callable[[Served], CollectionInfo]
) -> None:
    """Register the :data:`INFO_RESOURCE_URI` resource on ``srv``: ``info`` of the default
    collection, run by ``read``, as JSON."""

    @srv.resource(
        INFO_RESOURCE_URI,
        name="collection_info",
        title="Collection information",
        description="Counts, sizes and models of the default collection, as JSON.",
        mime_type="application/json",
    )
    async def info_resource() -> str:
        result = await call(read, info, served, error=ResourceError)
        return result.model_dump_json(indent=2)


def _check_unique(documents: Sequence[DocumentIn]) -> None:
    """Refuse a doc_id given twice in one call before anything is written."""
    seen: set[str] = set()
    for i, d in enumerate(documents):
        if d.doc_id in seen:
            raise InputError(
                f"document #{i}: doc_id {d.doc_id!r} appears twice in this ingest call; doc ids must be "
                "unique (re-ingesting an id replaces the document)"
            )
        seen.add(d.doc_id)


def ingest_in_groups(
    r: Retriever, docs: Sequence[dict[str, Any]], progress: Callable[[int, int, str], None]
) -> IngestReport:
    """Ingest ``docs`` in one call (validated whole first: a document the library refuses
    leaves the store as it was), calling ``progress(done, total, message)`` after each write
    (runs in a worker thread)."""

    def written(report: IngestReport) -> None:
        message = f"{report.documents}/{len(docs)} documents ({report.chunks_written} chunks written)"
        progress(report.documents, len(docs), message)

    progress(0, len(docs), f"0/{len(docs)} documents: checking them, then encoding")
    return r.ingest(list(docs), show_progress=False, on_progress=written)


def _progress_reporter(ctx: Context) -> Callable[[int, int, str], None]:
    """A callback for a worker thread that sends ``ctx``'s progress notification (a no-op
    when the request carries no progress token); a failure to send is logged, never raised."""

    def report(done: int, total: int, message: str) -> None:
        try:
            anyio.from_thread.run(ctx.report_progress, float(done), float(total), message)
        except Exception:  # the client went away: the ingest goes on
            logger.debug("could not send an ingest progress notification", exc_info=True)

    return report


def register_ingest(srv: MCPServer, collections: ServedCollections, write: Runner) -> None:
    """Register the ``ingest`` tool on ``srv``: the named collection's ingest run by ``write``
    (adds or replaces documents), with progress notifications."""

    async def ingest(
        documents: Annotated[
            list[DocumentIn],
            Field(
                min_length=1,
                max_length=MAX_INGEST_DOCUMENTS,
                description="Documents to add; a doc_id that exists already is replaced.",
            ),
        ],
        ctx: Context,
        collection: CollectionName | None = None,
    ) -> IngestOutput:
        served = pick(collections, collection)
        try:
            _check_unique(documents)
        except InputError as exc:
            raise ToolError(str(exc)) from exc
        docs = [d.model_dump() for d in documents]
        report = await call(write, ingest_in_groups, served.retriever, docs, _progress_reporter(ctx))
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
            f"Add documents to a collection (default {collections.default.name!r}; chunked and "
            "embedded). Re-adding a doc_id replaces that document; unchanged documents are skipped. "
            "Sends progress notifications when the request carries a progress token." + about_collections(collections)
        ),
        annotations=tool_annotations("Add documents", writes=True),  # replaces documents with the same doc_id
    )
    publish_collection_names(srv, "ingest", collections.names)


def register_delete(srv: MCPServer, collections: ServedCollections, write: Runner) -> None:
    """Register the ``delete`` tool on ``srv``: the named collection's delete run by ``write``,
    by doc_id and/or metadata filter (never everything)."""

    async def delete(
        doc_ids: Annotated[
            list[DocId] | None,
            Field(description=f"Ids of the documents to delete (each at most {MAX_ID_CHARS} characters)."),
        ] = None,
        filter: Annotated[FilterSpec | None, Field(description="Delete every document matching this filter.")] = None,
        collection: CollectionName | None = None,
    ) -> DeleteOutput:
        if not doc_ids and not filter:
            raise ToolError("pass doc_ids and/or a filter; refusing to delete everything")
        r = pick(collections, collection).retriever
        n = await call(write, r.delete, doc_ids or None, filter=filter_to_mapping(filter))
        return DeleteOutput(deleted_chunks=n)

    srv.add_tool(
        delete,
        name="delete",
        title="Delete documents",
        description=(
            f"Delete documents from a collection (default {collections.default.name!r}) by doc_id "
            "and/or metadata filter (both given: documents matching both). Returns the number of "
            "chunks removed."
        ),
        annotations=tool_annotations("Delete documents", writes=True),
    )
    publish_collection_names(srv, "delete", collections.names)
