"""Ingest: documents -> token-aware chunks -> encoders -> store, idempotent and crash-safe.

Write protocol, per batch of ``doc_batch`` documents:

1. validate every document and chunk it (nothing is written yet, so bad input leaves the
   store untouched);
2. encode the chunks of the new and changed documents a few documents at a time, each group
   about ``write_seconds`` of encoding (measured on the groups before), and write each group
   as soon as it is encoded: so an interrupt or a crash loses at most a few seconds of work;
3. per group: upsert its chunks (point ids are UUIDv5 of doc id and chunk index, so a re-run
   overwrites instead of duplicating), then delete its changed documents' stale chunks
   (``chunk_index >= n_chunks``). Ctrl-C is held back until both are done, then raised as
   :class:`IngestInterrupted`, whose report counts exactly the documents in the store.

A document is skipped when its stored chunk 0 carries the same content hash *and* the store
holds exactly ``n_chunks`` chunks for it, so a crash between 2 and 3 is repaired by a re-run.

The bookkeeping costs a constant number of store calls per batch, whatever its size: one
``retrieve`` of every chunk 0, one ``count_by_value`` of the chunks of the documents whose
hash matched, and, per written group holding changed documents, one ``count`` and one
``delete_by_filter`` of all their stale chunks.

BM25 length normalisation: the collection keeps running totals of its chunks' lengths
(``Store.length_stats``), and of each tenant's chunks (``Store.tenant_length_stats``). A write
group is encoded with the average of those totals plus its own chunks (a scoped ingest: the
tenant's totals), and its lengths are added to the collection's totals (and the tenant's)
after its upsert. Chunks written earlier keep the average of their time, and rewritten or
deleted chunks stay counted; see :func:`m3retriever.renormalize` for when and how to
recompute both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from typing import Any, Callable, Iterable, Mapping, Sequence, Sized

from m3retriever.branches import EncoderSet, without_parameters
from m3retriever.errors import InputError
from m3retriever.filters import And, AnyOf, Eq, Filter, Not, Range
from m3retriever.ingest.chunking import ChunkingConfig
from m3retriever.ingest.points import PointBuilder, no_tokens, point_id
from m3retriever.ingest.run import (
    IngestInterrupted,
    IngestReport,
    IngestRun,
    WritePacer,
    batched,
    sigint_deferred,
    write_groups,
)
from m3retriever.ingest.sources import coerce_document
from m3retriever.ingest.sync import ROOT_FIELD
from m3retriever.store.kept import add_length_stats, length_stats, tenant_length_stats
from m3retriever.store.schema import Store, StoredPoint
from m3retriever.tenancy import Scope, check_tenant_value
from m3retriever.types import Chunk, Document, LengthStats

__all__ = ["IngestReport", "IngestInterrupted", "point_id", "check_unscoped", "text_id", "content_hash", "batched", "Ingestor"]

logger = logging.getLogger(__name__)

def check_unscoped(doc: Document, tenant_field: str, where: str) -> None:
    """Refuse a document that an unscoped ingest into a collection partitioned by
    ``tenant_field`` cannot write safely: a tenant value in its metadata that no scope can name
    (a control character), or a doc id holding ``\\x1e`` (its point ids could equal those of a
    tenant's document: doc ``"t\\x1ed"`` unscoped and tenant ``t``'s doc ``"d"``).

    Raises:
        InputError: naming the document, the problem and the fix.
    """
    value: Any = doc.metadata.get(tenant_field)
    if isinstance(value, str):
        check_tenant_value(value, f"{where}: metadata {tenant_field!r}")
    if "\x1e" in doc.doc_id:
        raise InputError(
            f"{where}: doc_id {doc.doc_id!r:.80} holds the control character '\\x1e', which an "
            f"unscoped ingest into a collection partitioned by {tenant_field!r} cannot write (its "
            "point ids could be a tenant's document's); ingest it through a retriever scoped to its "
            "tenant (Retriever.scoped, --tenant), or use an id without it"
        )


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


class Ingestor:
    """Writes documents into one collection.

    Args:
        store: The store.
        collection: Collection name (must exist).
        encoders: The retriever's encoders.
        chunking: Chunk size and overlap.
        doc_batch: Most documents handled per batch (checked for changes together; their
            chunks are written in groups of about ``write_seconds`` of encoding).
        dense_dim: Dense size of the collection; encoder output of another size is refused.
        max_document_chars: Longest document text accepted (``None``: no limit).
        scope: The tenant every document is written to (``None``: no tenant).
        tenant_field: Without ``scope``: the metadata key partitioning the collection by tenant
            (``None``: not partitioned); each document is checked with :func:`check_unscoped`.
        headers: The chunk headers the encoders read (``chunk_headers``: ``"off"``,
            ``"structured"``, ``"all"``; :mod:`m3retriever.ingest.headers`).

    Attributes:
        write_seconds: About how much encoding one write holds (what an interrupt can lose).
        first_write_chunks: Chunks of the first write, before the encoding rate is measured.
    """

    write_seconds: float = 2.5
    first_write_chunks: int = 32

    def __init__(
        self,
        store: Store,
        collection: str,
        encoders: EncoderSet,
        chunking: ChunkingConfig,
        doc_batch: int = 256,
        dense_dim: int | None = None,
        max_document_chars: int | None = None,
        scope: Scope | None = None,
        tenant_field: str | None = None,
        headers: str = "off",
    ) -> None:
        self.scope = scope
        self._tenant = scope.tenant if scope is not None else None
        self._tenant_field = tenant_field if scope is None else None  # unscoped, partitioned
        self.store = store
        self.collection = collection
        self.encoders = encoders
        self.chunking = chunking
        self.doc_batch = doc_batch
        self.max_document_chars = max_document_chars
        self._pacer = WritePacer(self.write_seconds, self.first_write_chunks)
        self.builder = PointBuilder(encoders, chunking, collection, dense_dim, self._tenant, headers)
        # BM25's parameters stay out of the salt: a collection upgraded by ``renormalize`` (which
        # rewrites those vectors in place) keeps skipping its unchanged documents, and a real
        # change of them is refused by the fingerprint.
        self._salt = json.dumps(
            {"chunking": [chunking.max_tokens, chunking.overlap], "fp": without_parameters(encoders.fingerprint())},
            sort_keys=True,
        )

    def digest(self, doc: Document) -> str:
        """The content hash this ingestor stores with ``doc`` (stamped with its tenant).

        Raises:
            InputError: ``doc`` names another tenant than this ingestor's scope.
        """
        return content_hash(self.scope.stamp(doc) if self.scope is not None else doc, self._salt)

    def chunk(self, doc: Document) -> list[Chunk]:
        """Cut a document into chunks with the encoder's tokenizer."""
        return self.builder.chunk(doc)

    def ingest(
        self,
        documents: Iterable[Any],
        *,
        show_progress: bool = False,
        total: int | None = None,
        before_write: Callable[[], None] | None = None,
        on_progress: Callable[[IngestReport], None] | None = None,
        root: str | None = None,
        claim: bool = False,
    ) -> IngestReport:
        """Ingest documents (``Document`` objects or mappings); see the module docstring.

        A list or tuple is validated whole before anything is written, so bad input anywhere
        in it leaves the store as it was. A stream (a generator, a file reader) is validated
        batch by batch: an error names the document and says how many documents before it
        were already written (re-running after fixing the input skips them).

        Args:
            documents: The documents.
            show_progress: Show a progress bar.
            total: Number of documents, for the progress bar.
            before_write: Called once, after the first batch is validated and before the store
                is touched (the retriever creates its collection there).
            on_progress: Called with the report so far after each write (and each batch of
                unchanged documents), in the ingesting thread.
            root: The folder the documents were read from (absolute), stored with their
                chunks as ``ingest_root`` (what a sync deletes by).
            claim: Rewrite an unchanged document stored with another ``root`` (or none), so
                that it carries this one (a sync of a moved folder, or of a collection written
                before roots were stored).
        """
        start = time.perf_counter()
        validated = False
        if isinstance(documents, Sequence):
            documents = self.validate(documents)  # all of it (duplicates included), before any write
            validated = True
        seen: set[str] = set()
        expected = (lambda: len(documents)) if isinstance(documents, Sized) else None
        run = IngestRun(IngestReport(), total=total, show=show_progress, expected=expected, on_progress=on_progress)
        finished = False
        try:
            for batch in batched(documents, self.doc_batch):
                done = run.report.documents
                try:
                    docs = batch if validated else self.coerce_batch(batch, done, seen)
                    if before_write is not None:
                        before_write()
                        before_write = None
                    self._ingest_batch(docs, run, root, claim)
                except InputError as exc:
                    if run.report.documents:
                        which = "before this batch " if run.report.documents == done else ""
                        raise InputError(
                            f"{exc} ({run.report.documents} documents {which}were already written; "
                            "fix the input and re-run: unchanged documents are skipped, so nothing "
                            "is duplicated)"
                        ) from exc
                    raise
            finished = True
        except KeyboardInterrupt as exc:
            raise IngestInterrupted(replace(run.report, seconds=time.perf_counter() - start)) from exc
        finally:
            run.close(finished)
            if run.report.documents:
                self.store.flush(self.collection)
        return replace(run.report, seconds=time.perf_counter() - start)

    def validate(self, documents: Sequence[Any]) -> list[Document]:
        """Check every document (fields, duplicates, tokens) without writing anything.

        Raises:
            InputError: naming the first invalid document.
        """
        docs = self.coerce_batch(documents, 0, set())
        for doc in docs:
            self._check_has_tokens(doc)
        return docs

    def coerce_batch(self, batch: Sequence[Any], offset: int, seen: set[str]) -> list[Document]:
        """Validate a batch (``offset``: the number of documents before it, for messages;
        ``seen``: the ids met so far, to refuse a repeated one), stamped with the scope's tenant.

        Raises:
            InputError: naming the first invalid or repeated document.
        """
        docs = []
        for i, item in enumerate(batch):
            where = f"document #{offset + i}"
            doc = coerce_document(item, where=where, max_chars=self.max_document_chars)
            if self.scope is not None:
                doc = self.scope.stamp(doc)
            elif self._tenant_field is not None:
                check_unscoped(doc, self._tenant_field, where)
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
            raise no_tokens(doc)

    def _ingest_batch(self, docs: Sequence[Document], run: IngestRun, root: str | None, claim: bool) -> None:
        """Write a batch: its unchanged documents are counted at once, the others are encoded
        and written in groups of about ``write_seconds`` of encoding, each counted once it is
        in the store."""
        todo, updated, skipped = self.select(docs, root, claim)
        if skipped:
            run.add(IngestReport(documents=skipped, skipped=skipped))
        for group in write_groups(self.builder.chunked(todo), lambda item: len(item[2]), self._pacer.target):
            began = time.perf_counter()
            points, lengths = self.builder.encode(group, self.length_totals(), root)
            self._pacer.record(len(points), time.perf_counter() - began)
            with sigint_deferred():  # Ctrl-C waits until the group is written and counted
                run.add(self.write_group(points, lengths, [(d.doc_id, len(c)) for d, _, c in group], updated))

    def select(
        self, docs: Sequence[Document], root: str | None = None, claim: bool = False
    ) -> tuple[list[tuple[Document, str]], set[str], int]:
        """What of a validated batch needs writing (one ``retrieve`` and at most one
        ``count_by_value``).

        Returns:
            ``(document, content hash)`` of each new or changed document, in order; the ids of
            the changed ones (a chunk 0 is stored: stale chunks may follow it); and how many
            documents are unchanged.
        """
        first = {d.doc_id: point_id(d.doc_id, 0, self._tenant) for d in docs}
        existing = {r.id: r.payload for r in self.store.retrieve(self.collection, list(first.values()))}
        digests = {d.doc_id: content_hash(d, self._salt) for d in docs}
        unchanged = self._unchanged(first, digests, existing, root if claim else None)
        todo = [(d, digests[d.doc_id]) for d in docs if d.doc_id not in unchanged]
        # Chunks are written in one update operation, so a document without chunk 0 has no
        # chunks at all: only documents that had a chunk 0 can have stale chunks.
        updated = {d.doc_id for d, _ in todo if first[d.doc_id] in existing}
        return todo, updated, len(unchanged)

    def write_group(
        self,
        points: Sequence[StoredPoint],
        lengths: Mapping[str, LengthStats],
        docs: Sequence[tuple[str, int]],
        updated: set[str],
        *,
        upserted: bool = False,
    ) -> IngestReport:
        """Write one encoded group: upsert its points (unless ``upserted``: a worker wrote them
        already), add its length totals, delete its changed documents' stale chunks.

        Args:
            points: The group's points.
            lengths: Their own length totals.
            docs: ``(doc id, n_chunks)`` of each document of the group.
            updated: The ids of the changed documents (of this group or more).
            upserted: The points are in the store already.

        Returns:
            What was written, for the run's report.
        """
        if not upserted:
            self.store.upsert(self.collection, points)
        if lengths:
            add_length_stats(self.store, self.collection, lengths, self._tenant)
        changed = [(doc_id, n) for doc_id, n in docs if doc_id in updated]
        deleted = self._delete_stale(changed)
        return IngestReport(
            documents=len(docs),
            added=len(docs) - len(changed),
            updated=len(changed),
            chunks_written=sum(n for _, n in docs),
            chunks_deleted=deleted,
        )

    def _unchanged(
        self, first: dict[str, str], digests: dict[str, str], existing: dict[str, Any], root: str | None
    ) -> set[str]:
        """Ids of the documents whose chunk 0 (point id ``first[doc_id]``, stored payload in
        ``existing``) has the same content hash (and ``root``, when given) and whose stored
        chunk count is the ``n_chunks`` it records (one store call for the whole batch)."""
        expected: dict[str, int] = {}
        for doc_id, chunk0 in first.items():
            payload = existing.get(chunk0)
            if root is not None and payload is not None and payload.get(ROOT_FIELD) != root:
                continue
            if payload is not None and payload.get("content_hash") == digests[doc_id]:
                expected[doc_id] = int(payload.get("n_chunks", -1))
        if not expected:
            return set()
        within = self.scope.filter if self.scope is not None else None
        stored = self.store.count_by_value(self.collection, "doc_id", list(expected), within)
        return {doc_id for doc_id, n in expected.items() if stored.get(doc_id) == n}

    def length_totals(self) -> Mapping[str, LengthStats]:
        """The totals a batch is normalised with: the tenant's, else the collection's."""
        if not self.encoders.length_normalized():
            return {}
        if self._tenant is not None:
            return tenant_length_stats(self.store, self.collection).get(self._tenant, {})
        return length_stats(self.store, self.collection)

    def _delete_stale(self, updated: Sequence[tuple[str, int]]) -> int:
        """Delete every ``(doc id, n_chunks)`` document's chunks at ``chunk_index >= n_chunks``
        with one count and one delete; returns how many were deleted."""
        if not updated:
            return 0
        stale = _stale_chunks(updated)
        if self.scope is not None:
            stale = self.scope.within(stale)
        n_stale = self.store.count(self.collection, stale)
        if n_stale:
            self.store.delete_by_filter(self.collection, stale)
        return n_stale


def _stale_chunks(updated: Sequence[tuple[str, int]]) -> Filter:
    """Chunks ``chunk_index >= n`` of each ``(doc id, n)``: the documents' ids (the indexed
    condition the engine starts from) and an OR of the per-document conditions, written
    ``not (not a and not b ...)`` in the filter language."""
    per_doc = [And((Eq("doc_id", doc_id), Range("chunk_index", gte=n))) for doc_id, n in updated]
    any_doc: Filter = per_doc[0] if len(per_doc) == 1 else Not(And(tuple(Not(p) for p in per_doc)))
    return And((AnyOf("doc_id", [doc_id for doc_id, _ in updated]), any_doc))
