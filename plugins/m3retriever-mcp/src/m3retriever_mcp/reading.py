"""Reading what the server serves: the ``fetch`` and ``list_collections`` tools, and the resources
``resources/read`` resolves (the served collections, each one's information, a document, a
chunk; see :mod:`.links`).

A document is read whole with ``Retriever.get`` (its chunks in order, their overlap removed);
a chunk is that document's text over the chunk's span.
"""

from __future__ import annotations

from typing import Annotated, Callable

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.mcpserver.resources.templates import ResourceSecurity
from pydantic import Field

from m3retriever import InputError
from m3retriever_mcp.links import (
    CHUNK_TEMPLATE,
    COLLECTIONS_URI,
    DOC_TEMPLATE,
    INFO_TEMPLATE,
    chunk_uri,
    doc_uri,
    info_uri,
)
from m3retriever_mcp.models import ChunkIndex, CollectionInfo, CollectionName, DocId
from m3retriever_mcp.readmodels import ChunkSpanOut, CollectionEntry, CollectionsOutput, FetchOutput
from m3retriever_mcp.served import Served, ServedCollections
from m3retriever_mcp.tools import Runner, about_collections, call, pick, publish_collection_names, tool_annotations

__all__ = ["read_stored", "register_fetch", "register_list_collections", "register_collection_resources"]

_IDS = ResourceSecurity(exempt_params={"doc_id"})
"""A doc_id is an opaque key, never a path: '..' or '/x' are ids like any other."""


def read_stored(served: Served, doc_id: str, chunk_index: int | None) -> FetchOutput:
    """The stored document ``doc_id`` of ``served``, or its chunk ``chunk_index`` (runs in a
    worker thread).

    Raises:
        InputError: no such document (in this tenant), or no such chunk.
    """
    doc = served.retriever.get(doc_id)
    if doc is None:
        raise InputError(
            f"no document {doc_id!r} in collection {served.name!r}; use a doc_id that search returned "
            "(ids are case-sensitive), or search again"
        )
    spans = [ChunkSpanOut(chunk_index=c.chunk_index, start=c.start, end=c.end) for c in doc.chunks]
    text, uri = doc.text, doc_uri(served.name, doc_id)
    if chunk_index is not None:
        span = next((c for c in doc.chunks if c.chunk_index == chunk_index), None)
        if span is None:
            stored = ", ".join(str(c.chunk_index) for c in doc.chunks[:20]) + (", ..." if len(doc.chunks) > 20 else "")
            raise InputError(
                f"document {doc_id!r} of collection {served.name!r} has no chunk {chunk_index} (its chunks: "
                f"{stored}); pass one of those, or leave chunk_index out for the whole document"
            )
        text, uri = doc.text[span.start : span.end], chunk_uri(served.name, doc_id, chunk_index)
    return FetchOutput(
        collection=served.name,
        doc_id=doc_id,
        uri=uri,
        chunk_index=chunk_index,
        text=text,
        metadata=dict(doc.metadata),
        source=doc.source,
        complete=doc.complete,
        chunks=spans,
    )


def register_fetch(srv: MCPServer, collections: ServedCollections, read: Runner) -> None:
    """Register the read-only ``fetch`` tool on ``srv``: a whole document, or one chunk, by id."""

    async def fetch(
        doc_id: Annotated[DocId, Field(description="The document's id (doc_id of a search hit).")],
        chunk_index: Annotated[
            ChunkIndex | None,
            Field(description="Optional: read only this chunk (chunk_index of a search hit)."),
        ] = None,
        collection: CollectionName | None = None,
    ) -> FetchOutput:
        return await call(read, read_stored, pick(collections, collection), doc_id, chunk_index)

    srv.add_tool(
        fetch,
        name="fetch",
        title="Read a document",
        description=(
            "Read a stored document whole (its text with the chunks' overlap removed, metadata and "
            "source), or one of its chunks with chunk_index, by the doc_id a search returned. The "
            "resource URIs of search hits (uri, chunk_uri) read the same through resources/read."
            + about_collections(collections)
        ),
        annotations=tool_annotations("Read a document", writes=False),
    )
    publish_collection_names(srv, "fetch", collections.names)


def _entry(served: Served, default: bool, writes: bool, info: CollectionInfo) -> CollectionEntry:
    return CollectionEntry(
        name=served.name,
        default=default,
        description=served.description,
        documents=info.documents,
        points=info.points,
        profile=info.profile,
        tenant=info.tenant,
        writes=writes,
        info_uri=info_uri(served.name),
    )


def _list(collections: ServedCollections, writes: bool, info: Callable[[Served], CollectionInfo]) -> CollectionsOutput:
    default = collections.default.name
    return CollectionsOutput(collections=[_entry(s, s.name == default, writes, info(s)) for s in collections])


def register_list_collections(
    srv: MCPServer, collections: ServedCollections, read: Runner, info: Callable[[Served], CollectionInfo], writes: bool
) -> None:
    """Register the read-only ``list_collections`` tool on ``srv``: the allow-list with counts."""

    async def list_collections() -> CollectionsOutput:
        return await call(read, _list, collections, writes, info)

    srv.add_tool(
        list_collections,
        name="list_collections",
        title="List the collections",
        description=(
            "The collections this server serves (pass one as `collection` to search, fetch and the "
            "other tools), the default first, with what each holds and how many documents."
        ),
        annotations=tool_annotations("List the collections", writes=False),
    )


def register_collection_resources(
    srv: MCPServer, collections: ServedCollections, read: Runner, info: Callable[[Served], CollectionInfo], writes: bool
) -> None:
    """Register the resources: the served collections, and the templates of a collection's
    information, a document and a chunk (all JSON)."""

    @srv.resource(
        COLLECTIONS_URI,
        name="collections",
        title="Served collections",
        mime_type="application/json",
        description="The collections this server serves, the default first, as JSON.",
    )
    async def collections_resource() -> str:
        return (await call(read, _list, collections, writes, info, error=ResourceError)).model_dump_json(indent=2)

    @srv.resource(
        INFO_TEMPLATE,
        name="collection_info_by_name",
        title="Collection information",
        mime_type="application/json",
        description="Counts, sizes and models of one collection, as JSON.",
    )
    async def info_resource(collection: str) -> str:
        served = pick(collections, collection, error=ResourceError)
        return (await call(read, info, served, error=ResourceError)).model_dump_json(indent=2)

    @srv.resource(
        DOC_TEMPLATE,
        name="document",
        title="A stored document",
        mime_type="application/json",
        description="A whole stored document (text, metadata, source), as fetch returns it.",
        security=_IDS,
    )
    async def document_resource(collection: str, doc_id: str) -> str:
        served = pick(collections, collection, error=ResourceError)
        out = await call(read, read_stored, served, doc_id, None, error=ResourceError)
        return out.model_dump_json(indent=2)

    @srv.resource(
        CHUNK_TEMPLATE,
        name="chunk",
        title="A stored chunk",
        mime_type="application/json",
        description="One chunk of a stored document, as fetch with chunk_index returns it.",
        security=_IDS,
    )
    async def chunk_resource(collection: str, doc_id: str, chunk_index: str) -> str:
        served = pick(collections, collection, error=ResourceError)
        if not (chunk_index.isascii() and chunk_index.isdigit()) or len(chunk_index) > 18:
            raise ResourceError(f"chunk index {chunk_index[:20]!r} is not a number; use the chunk_uri of a search hit")
        out = await call(read, read_stored, served, doc_id, int(chunk_index), error=ResourceError)
        return out.model_dump_json(indent=2)
