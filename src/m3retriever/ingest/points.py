"""Chunks to stored points: chunk a document with the encoder's tokenizer, encode a group of
documents' chunks and build their points (ids, payloads, vectors). Nothing here touches a
store, so the same code runs in the ingesting process and in remote encoding workers
(:mod:`m3retriever.distributed`)."""

from __future__ import annotations

import uuid
from typing import Any, Mapping, Sequence

from m3retriever.branches import EncoderSet
from m3retriever.errors import InputError
from m3retriever.ingest.chunking import ChunkingConfig, chunk_text
from m3retriever.ingest.headers import chunk_fields, chunk_header, chunking_for, with_header
from m3retriever.ingest.sync import ROOT_FIELD
from m3retriever.store.schema import StoredPoint
from m3retriever.tenancy import check_tenant_value
from m3retriever.types import Chunk, Document, LengthStats

__all__ = ["PointBuilder", "point_id", "no_tokens"]

_NAMESPACE = uuid.UUID("6f1c8a52-4d0e-5b7a-9c3e-2a1d0b9e7f10")

Todo = Sequence[tuple[Document, str, list[Chunk]]]


def point_id(doc_id: str, chunk_index: int, tenant: str | None = None) -> str:
    """The point id of a chunk: UUIDv5 of (doc id, chunk index), and of the tenant when the
    collection is partitioned (so tenants' equal doc ids stay apart).

    Unambiguous: a tenant holds no control character (checked here), so the first ``\\x1e``
    ends it, and the chunk index, a whole number, follows the last ``\\x1f``. An unscoped
    ingest into a partitioned collection refuses doc ids holding ``\\x1e``
    (:func:`m3retriever.ingest.check_unscoped`), so its ids never equal a tenant's either.

    Raises:
        InputError: ``tenant`` holds a control character.
    """
    if tenant is not None:
        check_tenant_value(tenant)
        return str(uuid.uuid5(_NAMESPACE, f"{tenant}\x1e{doc_id}\x1f{chunk_index}"))
    return str(uuid.uuid5(_NAMESPACE, f"{doc_id}\x1f{chunk_index}"))


def no_tokens(doc: Document) -> InputError:
    """The error for a document whose text gives no token."""
    return InputError(f"document {doc.doc_id!r} has no tokens after tokenization; give it real text")


class PointBuilder:
    """Chunks documents and turns their chunks into the points of one collection.

    Args:
        encoders: The collection's encoders.
        chunking: Chunk size and overlap.
        collection: The collection's name (for messages).
        dense_dim: Dense size of the collection; encoder output of another size is refused.
        tenant: The tenant the points belong to (``None``: no tenant), part of their ids.
        headers: The chunk headers the encoders read (setting ``chunk_headers``).
    """

    def __init__(
        self,
        encoders: EncoderSet,
        chunking: ChunkingConfig,
        collection: str,
        dense_dim: int | None = None,
        tenant: str | None = None,
        headers: str = "off",
    ) -> None:
        self.headers = headers
        self.encoders = encoders
        self.chunking = chunking
        self.collection = collection
        self.dense_dim = dense_dim
        self.tenant = tenant

    def chunk(self, doc: Document) -> list[Chunk]:
        """Cut a document into chunks with the encoder's tokenizer."""
        offsets = self.encoders.chunking_encoder.token_offsets
        chunking = chunking_for(doc, self.headers, self.chunking, self.encoders.max_length)
        return chunk_text(doc.doc_id, doc.text, offsets, chunking, doc.structure)

    def chunked(self, docs: Sequence[tuple[Document, str]]) -> list[tuple[Document, str, list[Chunk]]]:
        """``(document, content hash, chunks)`` of each ``(document, content hash)``.

        Raises:
            InputError: a document gives no chunk.
        """
        todo = []
        for doc, digest in docs:
            chunks = self.chunk(doc)
            if not chunks:
                raise no_tokens(doc)
            todo.append((doc, digest, chunks))
        return todo

    def encode(
        self, todo: Todo, totals: Mapping[str, LengthStats], root: str | None = None
    ) -> tuple[list[StoredPoint], dict[str, LengthStats]]:
        """Encode every chunk of ``todo`` and build its points (nothing is written).

        Args:
            todo: ``(document, content hash, chunks)`` of each document.
            totals: The length totals the chunks are normalised with (per branch).
            root: The folder the documents were read from, stored with each chunk.

        Returns:
            The points, and their own length totals (per length-normalised branch; empty when
            there is none).
        """
        offsets = self.encoders.chunking_encoder.token_offsets
        # Each chunk's header once: what the encoders read in front of it, and what its payload keeps.
        flat = [(doc, c) for doc, _, chunks in todo for c in chunks]
        headers = [chunk_header(doc, c, self.headers, offsets) for doc, c in flat]
        texts = [with_header(h, c.text) for h, (_, c) in zip(headers, flat)]
        vectors = self.encoders.encode_document(texts, totals)
        if len(vectors) != len(texts):
            raise InputError(
                f"encoder returned {len(vectors)} vectors for {len(texts)} chunks; check the encoder plugin"
            )
        if vectors.dense is not None and self.dense_dim is not None and vectors.dense.shape[1] != self.dense_dim:
            raise InputError(
                f"the dense encoder returned {vectors.dense.shape[1]}-d vectors but collection "
                f"{self.collection!r} holds {self.dense_dim}-d vectors; nothing was written. Use "
                "the encoder the collection was built with, or another collection."
            )
        points: list[StoredPoint] = []
        row = 0
        for doc, digest, chunks in todo:
            for c in chunks:
                points.append(
                    StoredPoint(
                        id=point_id(doc.doc_id, c.chunk_index, self.tenant),
                        payload={
                            **_payload(doc, digest, c, len(chunks), root),
                            **chunk_fields(doc, c, headers[row]),
                        },
                        dense=vectors.dense[row].tolist() if vectors.dense is not None else None,
                        sparse=vectors.sparse[row] if vectors.sparse is not None else None,
                        bm25=vectors.bm25[row] if vectors.bm25 is not None else None,
                        multivector=vectors.multivector[row] if vectors.multivector is not None else None,
                        dense2=vectors.dense2[row].tolist() if vectors.dense2 is not None else None,
                    )
                )
                row += 1
        return points, dict(vectors.lengths)


def _payload(doc: Document, digest: str, c: Chunk, n_chunks: int, root: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "text": c.text,
        "doc_id": doc.doc_id,
        "chunk_index": c.chunk_index,
        "n_chunks": n_chunks,
        "start": c.start,
        "end": c.end,
        "source": doc.source,
        "metadata": dict(doc.metadata),
        "content_hash": digest,
    }
    if root is not None:
        payload[ROOT_FIELD] = root
    return payload
