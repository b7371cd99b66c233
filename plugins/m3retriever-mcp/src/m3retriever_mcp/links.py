"""The resource URIs of served documents and chunks, and the links search results carry.

``m3retriever://<collection>/doc/<doc_id>`` is a whole document and
``m3retriever://<collection>/doc/<doc_id>/chunk/<chunk_index>`` one of its chunks; both are
resource templates ``resources/read`` resolves, and ``fetch`` reads the same. Ids are
percent-encoded (RFC 6570 simple expansion), so any doc_id makes one URI and reads back
unchanged.
"""

from __future__ import annotations

from mcp.shared.uri_template import UriTemplate
from mcp_types import ResourceLink

__all__ = [
    "COLLECTIONS_URI",
    "DOC_TEMPLATE",
    "CHUNK_TEMPLATE",
    "INFO_TEMPLATE",
    "doc_uri",
    "chunk_uri",
    "info_uri",
    "document_link",
]

COLLECTIONS_URI = "m3retriever://collections"
DOC_TEMPLATE = "m3retriever://{collection}/doc/{doc_id}"
CHUNK_TEMPLATE = "m3retriever://{collection}/doc/{doc_id}/chunk/{chunk_index}"
INFO_TEMPLATE = "m3retriever://{collection}/info"

_DOC = UriTemplate.parse(DOC_TEMPLATE)
_CHUNK = UriTemplate.parse(CHUNK_TEMPLATE)
_INFO = UriTemplate.parse(INFO_TEMPLATE)


def doc_uri(collection: str, doc_id: str) -> str:
    """The URI of the document ``doc_id`` of ``collection``."""
    return _DOC.expand({"collection": collection, "doc_id": doc_id})


def chunk_uri(collection: str, doc_id: str, chunk_index: int) -> str:
    """The URI of chunk ``chunk_index`` of the document ``doc_id`` of ``collection``."""
    return _CHUNK.expand({"collection": collection, "doc_id": doc_id, "chunk_index": str(chunk_index)})


def info_uri(collection: str) -> str:
    """The URI of ``collection``'s information (counts, models)."""
    return _INFO.expand({"collection": collection})


def document_link(collection: str, doc_id: str, source: str | None) -> ResourceLink:
    """A resource link to a whole document (what a search result points at)."""
    return ResourceLink(
        type="resource_link",
        uri=doc_uri(collection, doc_id),
        name=doc_id,
        title=source or doc_id,
        description=f"The whole document {doc_id!r} of collection {collection!r}, with its metadata (JSON).",
        mime_type="application/json",
    )
