"""Typed results of the reading tools: ``fetch`` (a document or a chunk) and ``list_collections``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ChunkSpanOut", "FetchOutput", "CollectionEntry", "CollectionsOutput"]


class ChunkSpanOut(BaseModel):
    """Where a stored chunk lies in the document's text."""

    chunk_index: int
    start: int = Field(description="Offset of the chunk's first character in the document's text.")
    end: int = Field(description="Offset one past its last character.")


class FetchOutput(BaseModel):
    """A stored document, or one of its chunks, with the document's metadata."""

    collection: str
    doc_id: str
    uri: str = Field(description="The resource URI of what was read (the document, or the chunk).")
    chunk_index: int | None = Field(description="The chunk read; null: the whole document.")
    text: str = Field(description="The whole document's text (chunks in order, overlap removed), or the chunk's.")
    metadata: dict[str, Any] = Field(description="The document's metadata.")
    source: str | None = Field(description="Where the document came from (path, URL...).")
    complete: bool = Field(
        description="False when some of the document's chunks are missing (a blank line marks each gap)."
    )
    chunks: list[ChunkSpanOut] = Field(description="Each stored chunk's span in the document's text.")


class CollectionEntry(BaseModel):
    """One collection this server serves."""

    name: str
    default: bool = Field(description="Used when a tool call names no collection.")
    description: str | None = Field(description="What the collection holds, as configured.")
    documents: int
    points: int = Field(description="Chunks stored.")
    profile: str
    tenant: str | None = Field(description="The tenant the server is confined to (null: the whole collection).")
    writes: bool = Field(description="Whether ingest and delete may change it.")
    info_uri: str = Field(description="Resource with its full information (counts, sizes, models).")


class CollectionsOutput(BaseModel):
    """The collections this server serves (its allow-list), the default first."""

    collections: list[CollectionEntry]
