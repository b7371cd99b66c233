"""Contextual chunk headers: the document's title and the chunk's heading path
(``Tutorial > Query Parameters > Optional parameters``) put in front of the text the encoders
read, never of the stored chunk text (setting ``chunk_headers``)."""

from __future__ import annotations

from typing import Any, Callable, Literal, Mapping

from m3retriever.ingest.chunking import ChunkingConfig
from m3retriever.types import Chunk, Document

__all__ = [
    "HeaderMode",
    "HEADER_MODES",
    "HEADER_TOKENS",
    "FINGERPRINT_KEY",
    "header_path",
    "may_have_header",
    "chunking_for",
    "chunk_header",
    "with_header",
    "stored_encoder_text",
    "encoder_text",
    "chunk_fields",
]

HeaderMode = Literal["off", "structured", "all"]
HEADER_MODES: tuple[str, ...] = ("off", "structured", "all")
"""``off``: none; ``structured``: documents with a structure (what the file readers give);
``all``: every document with a title or a structure."""

HEADER_TOKENS = 32
"""Most tokens of a header; the chunk budget leaves room for them when headers are on."""

SEPARATOR = " > "

FINGERPRINT_KEY = "chunk_headers"
"""Where a collection's fingerprint records its chunk headers (absent: ``"off"``)."""


def _title(doc: Document) -> str | None:
    title: Any = doc.metadata.get("title")
    if isinstance(title, str) and title.strip():
        return " ".join(title.split())
    return None


def may_have_header(doc: Document, mode: str) -> bool:
    """Whether chunks of ``doc`` can get a header under ``mode``."""
    if mode == "structured":
        return bool(doc.structure)
    return mode == "all" and (bool(doc.structure) or _title(doc) is not None)


def chunking_for(doc: Document, mode: str, chunking: ChunkingConfig, max_length: int) -> ChunkingConfig:
    """The chunk budget of ``doc``: ``chunking``, made small enough that a chunk and its header
    (:data:`HEADER_TOKENS` and a blank line) fit in the ``max_length`` tokens the encoders read
    when its chunks can get a header."""
    room = max(8, max_length - 2 - HEADER_TOKENS - 2)
    if chunking.max_tokens <= room or not may_have_header(doc, mode):
        return chunking
    return ChunkingConfig(room, min(chunking.overlap, room // 2))


def header_path(doc: Document, chunk: Chunk, mode: str) -> tuple[str, ...]:
    """The title and heading path put in front of ``chunk`` under ``mode`` (empty: none). The
    title is left out where the path starts with it, and a header that is only the title is
    left out of a chunk that begins with it (a JSONL document's first chunk)."""
    if not may_have_header(doc, mode):
        return ()
    title = _title(doc)
    path = chunk.headings
    if title is not None and (not path or path[0] != title):
        path = (title, *path)
    if title is not None and path == (title,) and chunk.text.lstrip("# \n\t").startswith(title):
        return ()
    return path


def chunk_header(
    doc: Document, chunk: Chunk, mode: str, token_offsets: Callable[[str], list[tuple[int, int]]]
) -> str | None:
    """The header the encoders read in front of ``chunk`` (``None``: none): its
    :func:`header_path` joined by ``" > "``, cut to :data:`HEADER_TOKENS` tokens of
    ``token_offsets``. Stored with the chunk (payload ``header``) so that what re-encodes
    stored chunks (``collection add-branch``, ``renormalize``) reads what ingest read."""
    path = header_path(doc, chunk, mode)
    if not path:
        return None
    header = SEPARATOR.join(path)
    spans = [(a, b) for a, b in token_offsets(header) if b > a]
    if len(spans) > HEADER_TOKENS:
        header = header[: spans[HEADER_TOKENS][0]].rstrip()
    return header


def with_header(header: str | None, text: str) -> str:
    """What the encoders read: ``text`` after ``header`` and a blank line (``text`` alone
    without a header)."""
    return f"{header}\n\n{text}" if header else text


def stored_encoder_text(payload: Mapping[str, Any]) -> str:
    """What the encoders read of a stored chunk (its payload's ``header`` and ``text``)."""
    header = payload.get("header")
    return with_header(header if isinstance(header, str) else None, str(payload.get("text", "")))


def encoder_text(doc: Document, chunk: Chunk, mode: str, token_offsets: Callable[[str], list[tuple[int, int]]]) -> str:
    """What the encoders read of ``chunk`` under ``mode``: :func:`with_header` of its
    :func:`chunk_header`."""
    return with_header(chunk_header(doc, chunk, mode, token_offsets), chunk.text)


def chunk_fields(doc: Document, chunk: Chunk, header: str | None) -> dict[str, Any]:
    """What a chunk's payload records of its place in the document: ``title`` (the document's,
    or ``None``), ``headings`` (its heading path, a list), ``pages`` (the PDF pages it spans,
    only when it has some) and ``header`` (its :func:`chunk_header`, what the encoders read in
    front of it, only when they read one)."""
    fields: dict[str, Any] = {"title": _title(doc), "headings": list(chunk.headings)}
    if chunk.pages:
        fields["pages"] = list(chunk.pages)
    if header is not None:
        fields["header"] = header
    return fields
