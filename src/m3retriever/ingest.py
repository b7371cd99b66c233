"""Ingest: documents -> token-aware chunks -> encoders -> store, idempotent and crash-safe.

Write protocol, per batch of documents:

1. validate every document and chunk and encode every chunk (nothing is written yet, so bad
   input or an encoder failure leaves the store untouched);
2. upsert the new chunks (point ids are UUIDv5 of doc id and chunk index, so a re-run
   overwrites instead of duplicating);
3. delete the document's stale chunks (``chunk_index >= n_chunks``).

A document is skipped when its stored chunk 0 carries the same content hash *and* the store
holds exactly ``n_chunks`` chunks for it, so a crash between 2 and 3 is repaired by a re-run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator, Sequence

from tqdm.auto import tqdm

from m3retriever.branches import EncoderSet
from m3retriever.chunking import ChunkingConfig, chunk_text
from m3retriever.errors import InputError
from m3retriever.filters import And, Eq, Range
from m3retriever.sources import coerce_document
from m3retriever.store.schema import Store, StoredPoint
from m3retriever.types import Chunk, Document

__all__ = ["IngestReport", "point_id", "text_id", "content_hash", "Ingestor"]

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1c8a52-4d0e-5b7a-9c3e-2a1d0b9e7f10")


def point_id(doc_id: str, chunk_index: int) -> str:
    """The point id of a chunk: UUIDv5 of (doc id, chunk index)."""
    return str(uuid.uuid5(_NAMESPACE, f"{doc_id}\x1f{chunk_index}"))


def text_id(text: str) -> str:
    """A document id derived from its text (for texts given without one): the first 32 hex
    digits of the text's SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def content_hash(doc: Document, salt: str) -> str:
    """SHA-256 of everything that determines a document's stored chunks."""
    blob = json.dumps(
        {"text": doc.text, "metadata": dict(doc.metadata), "source": doc.source, "salt": salt},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IngestReport:
    """What an ingest call did.

    Attributes:
        documents: Documents read.
        added: New documents written.
        updated: Changed documents rewritten (their stale chunks removed).
        skipped: Unchanged documents (content hash matched): no encoding, no writes.
        chunks_written: Chunks encoded and upserted.
        chunks_deleted: Stale chunks removed.
        seconds: Wall time.
        skipped_files: ``"path: reason"`` for each file a folder ingest skipped (unreadable or
            empty).
    """

    documents: int = 0
    added: int = 0
    updated: int = 0
    skipped: int = 0
    chunks_written: int = 0
    chunks_deleted: int = 0
    seconds: float = 0.0
    skipped_files: tuple[str, ...] = ()

    def __add__(self, other: "IngestReport") -> "IngestReport":
        return IngestReport(
            *(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__)
        )


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class Ingestor:
    """Writes documents into one collection.

    Args:
        store: The store.
        collection: Collection name (must exist).
        encoders: The retriever's encoders.
        chunking: Chunk size and overlap.
        doc_batch: Documents handled per write batch.
        dense_dim: Dense size of the collection; encoder output of another size is refused.
        max_document_chars: Longest document text accepted (``None``: no limit).
    """

    def __init__(
        self,
        store: Store,
        collection: str,
        encoders: EncoderSet,
        chunking: ChunkingConfig,
        doc_batch: int = 256,
        dense_dim: int | None = None,
        max_document_chars: int | None = None,
    ) -> None:
        self.store = store
        self.collection = collection
        self.encoders = encoders
        self.chunking = chunking
        self.doc_batch = doc_batch
        self.dense_dim = dense_dim
        self.max_document_chars = max_document_chars
        self._salt = json.dumps(
            {"chunking": [chunking.max_tokens, chunking.overlap], "fp": encoders.fingerprint()},
            sort_keys=True,
        )

    def chunk(self, doc: Document) -> list[Chunk]:
        """Cut a document into chunks with the encoder's tokenizer."""
        return chunk_text(doc.doc_id, doc.text, self.encoders.chunking_encoder.token_offsets, self.chunking)

    def _is_unchanged(self, doc: Document, digest: str, existing: dict[str, Any]) -> bool:
        payload = existing.get(point_id(doc.doc_id, 0))
        if payload is None or payload.get("content_hash") != digest:
            return False
        n = int(payload.get("n_chunks", -1))
        return self.store.count(self.collection, Eq("doc_id", doc.doc_id)) == n

    def ingest(
        self, documents: Iterable[Any], *, show_progress: bool = False, total: int | None = None
    ) -> IngestReport:
        """Ingest documents (``Document`` objects or mappings); see the module docstring.

        A list or tuple is validated whole before anything is written, so bad input anywhere
        in it leaves the store as it was. A stream (a generator, a file reader) is validated
        batch by batch: an error names the document and says how many documents before it
        were already written (re-running after fixing the input skips them).
        """
        start = time.perf_counter()
        report = IngestReport()
        if isinstance(documents, Sequence):
            documents = self.validate(documents)
        seen: set[str] = set()
        bar = tqdm(total=total, unit="doc", desc="ingest", disable=not show_progress)
        try:
            for batch in _batched(documents, self.doc_batch):
                try:
                    docs = self._coerce_batch(batch, report.documents, seen)
                    report = report + self._ingest_batch(docs)
                except InputError as exc:
                    if report.documents:
                        raise InputError(
                            f"{exc} ({report.documents} documents before this batch were "
                            "already written; fix the input and re-run: unchanged documents "
                            "are skipped, so nothing is duplicated)"
                        ) from exc
                    raise
                bar.update(len(docs))
        finally:
            bar.close()
            if report.documents:
                self.store.flush(self.collection)
        return replace(report, seconds=time.perf_counter() - start)

    def validate(self, documents: Sequence[Any]) -> list[Document]:
        """Check every document (fields, duplicates, tokens) without writing anything.

        Raises:
            InputError: naming the first invalid document.
        """
        docs = self._coerce_batch(documents, 0, set())
        for doc in docs:
            self._check_has_tokens(doc)
        return docs

    def _coerce_batch(self, batch: Sequence[Any], offset: int, seen: set[str]) -> list[Document]:
        docs = []
        for i, item in enumerate(batch):
            where = f"document #{offset + i}"
            doc = coerce_document(item, where=where, max_chars=self.max_document_chars)
            if doc.doc_id in seen:
                raise InputError(
                    f"{where}: doc_id {doc.doc_id!r} appears twice in this ingest call; doc ids "
                    "must be unique (re-ingesting an id replaces the document)"
                )
            seen.add(doc.doc_id)
            docs.append(doc)
        return docs

    def _check_has_tokens(self, doc: Document) -> None:
        # Any letter or digit gives a token; only texts of symbols/controls need a look.
        if not any(c.isalnum() for c in doc.text) and not self.encoders.chunking_encoder.token_offsets(doc.text):
            raise InputError(
                f"document {doc.doc_id!r} has no tokens after tokenization; give it real text"
            )

    def _ingest_batch(self, docs: Sequence[Document]) -> IngestReport:
        existing = {
            r.id: r.payload
            for r in self.store.retrieve(self.collection, [point_id(d.doc_id, 0) for d in docs])
        }
        todo: list[tuple[Document, str, list[Chunk]]] = []
        skipped = 0
        for doc in docs:
            digest = content_hash(doc, self._salt)
            if self._is_unchanged(doc, digest, existing):
                skipped += 1
                continue
            chunks = self.chunk(doc)
            if not chunks:
                raise InputError(
                    f"document {doc.doc_id!r} has no tokens after tokenization; give it real text"
                )
            todo.append((doc, digest, chunks))
        if not todo:
            return IngestReport(documents=len(docs), skipped=skipped)
        texts = [c.text for _, _, chunks in todo for c in chunks]
        vectors = self.encoders.encode_document(texts)
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
                payload = {
                    "text": c.text,
                    "doc_id": doc.doc_id,
                    "chunk_index": c.chunk_index,
                    "n_chunks": len(chunks),
                    "start": c.start,
                    "end": c.end,
                    "source": doc.source,
                    "metadata": dict(doc.metadata),
                    "content_hash": digest,
                }
                points.append(
                    StoredPoint(
                        id=point_id(doc.doc_id, c.chunk_index),
                        payload=payload,
                        dense=vectors.dense[row].tolist() if vectors.dense is not None else None,
                        sparse=vectors.sparse[row] if vectors.sparse is not None else None,
                        bm25=vectors.bm25[row] if vectors.bm25 is not None else None,
                    )
                )
                row += 1
        self.store.upsert(self.collection, points)
        deleted = 0
        added = updated = 0
        for doc, _digest, chunks in todo:
            if point_id(doc.doc_id, 0) not in existing:
                # Chunks are written in one update operation, so a document without chunk 0
                # has no chunks at all: nothing can be stale.
                added += 1
                continue
            updated += 1
            stale = And((Eq("doc_id", doc.doc_id), Range("chunk_index", gte=len(chunks))))
            n_stale = self.store.count(self.collection, stale)
            if n_stale:
                self.store.delete_by_filter(self.collection, stale)
                deleted += n_stale
        return IngestReport(
            documents=len(docs),
            added=added,
            updated=updated,
            skipped=skipped,
            chunks_written=len(points),
            chunks_deleted=deleted,
        )
