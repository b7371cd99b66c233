"""The public entry point: :class:`Retriever`."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Sized

from m3retriever.collection import collection_spec as collection_spec

# Re-exported: imported from here by renormalize, finetune and users.
from m3retriever.collection import lengths_in_force
from m3retriever.components import encoders_for, reranker_for
from m3retriever.config import Config, SearchConfig
from m3retriever.config.built import KEY as BUILT_KEY
from m3retriever.config.built import built_values, explain_mismatch
from m3retriever.config.saved import as_values, check_saved
from m3retriever.config.settings import SearchSettings, Settings
from m3retriever.context import expand_results, read_document
from m3retriever.encoders.base import Encoder
from m3retriever.errors import InputError
from m3retriever.filters import AnyOf, Filter, parse_filter
from m3retriever.ingest import Ingestor, IngestReport, point_id, text_id
from m3retriever.ingest.chunking import ChunkingConfig
from m3retriever.ingest.document_fields import add_document_fields, warn_if_missing
from m3retriever.ingest.folder import FolderTally
from m3retriever.ingest.globs import FileFilter
from m3retriever.ingest.roots import ingest_root, ingest_roots, keep_old_sources, record_root
from m3retriever.ingest.sources import DocumentStream, read_beir_corpus, read_folder, read_jsonl, source_kind
from m3retriever.ingest.sync import delete_documents, only_folder, orphan_notes, stale_documents
from m3retriever.maintenance.info import collection_info
from m3retriever.opening import OpenedCollection, open_collection
from m3retriever.opening import stored_multivector as stored_multivector
from m3retriever.rerankers.base import Reranker
from m3retriever.search import Searcher
from m3retriever.store.index_settings import INDEX_SETTINGS, adopt_index_settings
from m3retriever.store.schema import Store
from m3retriever.types import Document, SearchResult, StoredDocument
from m3retriever.validation import check_doc_id, check_string

__all__ = ["Retriever", "collection_spec", "stored_multivector"]

logger = logging.getLogger(__name__)

_shared: dict[Config, "Retriever"] = {}
_shared_lock = threading.Lock()

FilterLike = Filter | Mapping[str, Any] | None


class Retriever:
    """Hybrid retriever: ingest documents, search them, delete them.

    Args:
        config: The configuration (default: ``Config()``, the ``bge-m3`` profile and an
            embedded store in ``./m3r_data``).
        client: An existing ``qdrant_client.QdrantClient`` to use instead of
            ``config.location``.
        store: An already-open :class:`~m3retriever.store.Store` (for sharing one store).
        must_exist: Open only an existing collection (read-only use): otherwise raise
            :class:`~m3retriever.errors.CollectionNotFoundError` having created nothing.

    Attributes:
        config: The configuration as given (with ``multivector``, when left unset, taken from
            the existing collection).
        settings: The same with every default filled in (:func:`m3retriever.resolve`); what
            the encoders, the reranker and the search run with.
        encoders: The branch encoders (:class:`~m3retriever.branches.EncoderSet`).
        reranker: The reranker, or ``None``.

    Example::

        from m3retriever import Config, Retriever
        r = Retriever(Config(location="./data", profile="small"))
        r.add_texts(["Qdrant is a vector database."], ids=["q1"])
        for hit in r.search("what is qdrant?"):
            print(hit.doc_id, hit.scores.final)
    """

    def __init__(
        self, config: Config | None = None, *, client: Any = None, store: Store | None = None, must_exist: bool = False
    ) -> None:
        self._closed = False
        self.opened: OpenedCollection = open_collection(config or Config(), client, store=store, must_exist=must_exist)
        self.store = self.opened.store
        self.scope = self.opened.scope  # the tenant it is confined to (None: the whole collection)
        self._ready = False
        self._ready_lock = threading.Lock()
        try:
            c = self.settings
            self.encoders = encoders_for(c)
            self.reranker: Reranker | None = reranker_for(c)
            self._spec = collection_spec(self.encoders, c)
            if self.opened.exists():
                with explain_mismatch(self.opened.built, c):
                    self.store.ensure_collection(self._spec)  # fails fast on a fingerprint mismatch
                asked = {k: getattr(self.config, k) for k in INDEX_SETTINGS}  # explicit ones only
                self._spec = adopt_index_settings(self.store, self._spec, asked)
                self._ready = True
        except Exception:
            self.close()
            raise
        chunk_tokens = min(c.chunk_tokens, max(8, self.encoders.max_length - 2))
        self._ingestor = Ingestor(
            self.store,
            c.collection,
            self.encoders,
            ChunkingConfig(chunk_tokens, min(c.chunk_overlap, chunk_tokens // 2)),
            dense_dim=self._spec.dense_dim,
            max_document_chars=c.max_document_chars,
            scope=self.scope,
            tenant_field=c.tenant_field,
            headers=c.chunk_headers,
        )
        self._searcher = Searcher(
            self.store,
            c.collection,
            self.encoders,
            self.reranker,
            distance=self._spec.distance,
            max_query_tokens=c.max_query_tokens,
            quantized=self._spec.quantization != "none",
        )

    @property
    def config(self) -> Config:
        """The configuration as given (``multivector``, when left unset, following the
        collection)."""
        return self.opened.config

    @property
    def settings(self) -> Settings:
        """The settings in force: the configuration with every default filled in."""
        return self.opened.settings

    @property
    def collection(self) -> str:
        """The collection name."""
        return self.opened.name

    # -- construction helpers --------------------------------------------------------
    @classmethod
    def shared(cls, config: Config | None = None) -> "Retriever":
        """The process-wide retriever for ``config`` (created on first call).

        Adapters (LlamaIndex, LangChain, MCP) in one process use this, so they share one
        open store and one set of warm models. An embedded store can be opened only once at a
        time, so use this instead of several ``Retriever(...)`` on the same location.
        """
        config = config or Config()
        with _shared_lock:
            r = _shared.get(config)
            if r is None or r._closed:
                r = cls(config)
                _shared[config] = r
            return r

    def scoped(self, tenant: str) -> "Retriever":
        """A retriever over the same store confined to ``tenant`` (needs ``tenant_field``):
        its searches, counts, deletes and ingests see and touch that tenant's chunks only."""
        return type(self)(replace(self.config, tenant=tenant), store=self.store)

    def _within(self, flt: Filter | None) -> Filter | None:
        """``flt`` confined to this retriever's tenant (unchanged when it has none)."""
        return self.scope.within(flt) if self.scope is not None else flt

    @property
    def dense_encoder(self) -> Encoder | None:
        """The dense branch's encoder."""
        return self.encoders.dense

    def _ensure_collection(self) -> None:
        with self._ready_lock:
            if not self._ready:
                new = not self.store.has_collection(self.collection)
                self.store.ensure_collection(self._spec)
                if new:
                    self.store.set_metadata(self.collection, {BUILT_KEY: built_values(self.settings)})
                self._ready = True

    # -- ingest ----------------------------------------------------------------------
    def ingest(
        self,
        documents: Iterable[Document | Mapping[str, Any]],
        *,
        show_progress: bool | None = None,
        on_progress: Callable[[IngestReport], None] | None = None,
    ) -> IngestReport:
        """Chunk, encode and store documents; unchanged documents are skipped.

        Args:
            documents: :class:`~m3retriever.types.Document` objects or mappings with
                ``text``, ``doc_id`` and optional ``metadata``/``source``.
            show_progress: Show a progress bar (default: ``config.show_progress``).
            on_progress: Called with the report so far after each write (for a progress
                display of your own; it runs in the ingesting thread).

        Returns:
            An :class:`~m3retriever.ingest.IngestReport`.

        Raises:
            InputError: for empty text, wrong types or duplicate ids; nothing of the failing
                batch is written.
        """
        if isinstance(documents, (str, bytes, Document, Mapping)) or not isinstance(documents, Iterable):
            raise InputError(
                "ingest() takes an iterable of documents (a list, a generator...), got "
                f"{type(documents).__name__}; wrap a single document in a list"
            )
        return self._write(documents, show_progress=show_progress, on_progress=on_progress)

    def _write(
        self,
        documents: Iterable[Document | Mapping[str, Any]],
        *,
        show_progress: bool | None = None,
        on_progress: Callable[[IngestReport], None] | None = None,
        root: str | None = None,
        claim: bool = False,
    ) -> IngestReport:
        total = len(documents) if isinstance(documents, Sized) else None
        progress = self.config.show_progress if show_progress is None else show_progress
        with self.opened.write_lock:
            return self._ingestor.ingest(
                documents, show_progress=progress, total=total, before_write=self._ensure_collection,
                on_progress=on_progress, root=root, claim=claim,
            )

    def add_texts(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        source: str | None = None,
    ) -> IngestReport:
        """Ingest plain texts. Without ``ids``, ids are derived from the texts (:func:`text_id`)."""
        if isinstance(texts, str) or not isinstance(texts, Iterable):
            raise InputError("add_texts() takes a list of strings; wrap a single text in a list")
        texts = list(texts)
        for name, values in (("ids", ids), ("metadatas", metadatas)):
            if values is not None and (isinstance(values, (str, Mapping)) or not isinstance(values, Sequence)):
                raise InputError(f"add_texts(): {name} must be a list with one entry per text")
        if ids is not None and len(ids) != len(texts):
            raise InputError(f"got {len(texts)} texts but {len(ids)} ids; pass one id per text")
        if metadatas is not None and len(metadatas) != len(texts):
            raise InputError(f"got {len(texts)} texts but {len(metadatas)} metadatas")
        docs = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"text #{i} must be a string, got {type(text).__name__}")
            doc_id = ids[i] if ids is not None else text_id(check_string(text, f"text #{i}"))
            docs.append({"text": text, "doc_id": doc_id, "metadata": (metadatas or [{}] * len(texts))[i] or {}, "source": source})
        return self.ingest(docs)

    def ingest_path(
        self,
        path: str | Path,
        *,
        show_progress: bool | None = None,
        strict: bool = False,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        sync: bool = False,
    ) -> IngestReport:
        """Ingest a folder of documents (every file a reader reads: text, Markdown, HTML, PDF,
        Word, notebooks, reStructuredText...), a JSONL file, or a BEIR dataset folder.

        Sources are stored relative to the folder ingested (a JSONL record without its own
        ``source``: the file's name), and the folder, made absolute, is recorded in the
        collection's metadata (:mod:`m3retriever.ingest.roots`) and with each chunk written.

        Args:
            path: The folder or file.
            show_progress: Show a progress bar (default: ``config.show_progress``).
            strict: For a folder, check every file first and fail on the first that cannot be
                read (corrupt, not UTF-8, permission denied) or is longer than
                ``max_document_chars``, instead of skipping it with a warning (and listing it in
                ``skipped_files``).
            include: For a folder: glob patterns of the files to take (default: all), matched
                against their path relative to the folder (:mod:`m3retriever.ingest.globs`).
            exclude: For a folder: glob patterns of files to leave out.
            sync: For a folder: make the collection equal the folder: also delete the
                documents earlier ingests read from this folder whose file is gone or left out
                (:mod:`m3retriever.ingest.sync`); ``removed`` counts them.

        Returns:
            The report; for a folder, ``files`` counts its files per suffix (read, skipped and
            why), ``skipped_files`` lists the skipped ones and ``notes`` what a reader could not
            read in a file it read.

        Raises:
            InputError: if the path is missing or of the wrong kind, a JSONL record or file is
                malformed, ``include``/``exclude``/``sync`` is given for something else than a
                folder, or (``strict``) a file of the folder cannot be read or is too long.
        """
        p = Path(path)
        kind = source_kind(p)
        if kind != "folder" and (include or exclude or sync):
            raise InputError(f"{path}: include/exclude patterns and sync apply to folders; pass a folder")
        tally = FolderTally()
        docs: DocumentStream
        if kind == "beir":
            docs = read_beir_corpus(p)
        elif kind == "folder":
            picked = FileFilter.of(include, exclude)
            docs = read_folder(p, strict=strict, max_chars=self.config.max_document_chars, files=picked, tally=tally)
        else:
            docs = read_jsonl(p)
        tenant = self.scope.tenant if self.scope is not None else None
        if self.store.has_collection(self.collection):  # sources stored as typed by older versions
            if kind == "folder":  # fields an earlier version did not store, added in place
                within = self.scope.filter if self.scope is not None else None
                first = lambda doc_id: point_id(doc_id, 0, tenant)  # noqa: E731
                docs = docs.map_batches(
                    lambda batch: add_document_fields(
                        batch, self.store, self.collection, first, self._ingestor.digest, within
                    )
                )
            docs = docs.map_batches(
                lambda batch: keep_old_sources(
                    batch, self.store, self.collection, lambda doc_id: point_id(doc_id, 0, tenant), self._ingestor.digest
                )
            )
        root = ingest_root(p, kind)
        folder_root = str(root) if kind == "folder" else None
        report = self._write(docs, show_progress=show_progress, root=folder_root, claim=sync)
        if self.store.has_collection(self.collection):
            record_root(self.store, self.collection, root, kind, tenant)
            if sync and folder_root is not None:
                report = self._sync_folder(report, folder_root, tally)
        return replace(report, skipped_files=tuple(sorted(tally.skipped)), files=tally.files(), notes=tuple(tally.notes))

    def _sync_folder(self, report: IngestReport, root: str, tally: FolderTally) -> IngestReport:
        """Delete the documents stored from folder ``root`` that its read (``tally``) no longer
        holds (:mod:`m3retriever.ingest.sync`); ``report`` with them counted."""
        tenant = self.scope.tenant if self.scope is not None else None
        with self.opened.write_lock:
            unmarked = only_folder(ingest_roots(self.store, self.collection), root, tenant)
            orphans: dict[str, list[str]] = {}
            stale = stale_documents(
                self.store, self.collection, root, tally, self.scope, unmarked=unmarked, orphans=orphans
            )
            chunks = delete_documents(self.store, self.collection, stale, self.scope)
        tally.notes.extend(orphan_notes(orphans))
        return replace(report, removed=len(stale), chunks_deleted=report.chunks_deleted + chunks)

    # -- search ----------------------------------------------------------------------
    def search_settings(self, **options: Any) -> SearchSettings:
        """The search settings a call with ``options`` runs with, every default filled in.

        Args:
            **options: :class:`~m3retriever.config.SearchConfig` fields for the call (``None``
                values are ignored).

        Raises:
            ConfigError: for an unknown option or a value of the wrong type or range.
        """
        return self.opened.search_settings(**options)

    def search(self, query: str, top_k: int | None = None, filter: FilterLike = None, **options: Any) -> SearchResult:
        """Search the collection.

        Args:
            query: The query text.
            top_k: Hits to return (default: ``config.search.top_k``).
            filter: A :mod:`~m3retriever.filters` filter or a mapping such as
                ``{"lang": "en", "year": {"gte": 2020}}``.
            **options: Any :class:`~m3retriever.config.SearchConfig` field for this call
                (``rerank=False``, ``min_score=0.5``, ``rerank_depth=20``...).

        Returns:
            A :class:`~m3retriever.types.SearchResult` (iterable of hits, best first).
        """
        return self.search_batch([query], top_k=top_k, filter=filter, **options)[0]

    def search_batch(
        self, queries: Sequence[str], top_k: int | None = None, filter: FilterLike = None, **options: Any
    ) -> list[SearchResult]:
        """Search several queries; they are encoded together and sent in one store call."""
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise InputError(
                f"search_batch() takes a list of query strings, got {type(queries).__name__}"
            )
        resolved = self.search_settings(top_k=top_k, **options)
        flt = self._within(parse_filter(filter))
        if not self._ready:
            if not self.store.has_collection(self.collection):
                return [SearchResult(q, []) for q in queries]
            self._ensure_collection()
        warn_if_missing(self.store, self.collection, flt)
        corpus = self.scope.filter if self.scope is not None else None
        results = self._searcher.search_many(list(queries), resolved, flt, idf_corpus=corpus)
        if resolved.expand:
            tenant_field = self.settings.tenant_field
            results = expand_results(
                self.store, self.collection, results, resolved.expand, scope=self.scope, tenant_field=tenant_field
            )
        return results

    async def asearch(self, query: str, top_k: int | None = None, filter: FilterLike = None, **options: Any) -> SearchResult:
        """:meth:`search` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.search, query, top_k, filter, **options)

    async def aingest(self, documents: Iterable[Document | Mapping[str, Any]], **kwargs: Any) -> IngestReport:
        """:meth:`ingest` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.ingest, documents, **kwargs)

    # -- delete / info ---------------------------------------------------------------
    def delete(self, doc_ids: Sequence[str] | None = None, *, filter: FilterLike = None) -> int:
        """Delete documents by id and/or every chunk matching a filter.

        Returns:
            The number of chunks deleted.
        """
        if isinstance(doc_ids, str):
            doc_ids = [doc_ids]
        if doc_ids is not None and not isinstance(doc_ids, Sequence):
            raise InputError(f"delete() takes a list of doc ids, got {type(doc_ids).__name__}")
        flt = parse_filter(filter)
        if not doc_ids and flt is None:
            raise InputError("delete() needs doc_ids or a filter; refusing to delete everything")
        if not self.store.has_collection(self.collection):
            return 0
        parts: list[Filter] = []
        if doc_ids:
            for d in doc_ids:
                check_doc_id(d, "delete()")
            parts.append(AnyOf("doc_id", list(doc_ids)))
        if flt is not None:
            parts.append(flt)
        target: Filter = parts[0] if len(parts) == 1 else parts[0] & parts[1]  # type: ignore[operator]
        target = self.scope.within(target) if self.scope is not None else target
        with self.opened.write_lock:
            n = self.store.count(self.collection, target)
            if n:
                self.store.delete_by_filter(self.collection, target)
                self.store.flush(self.collection)
        return n

    def count(self, filter: FilterLike = None) -> int:
        """Number of chunks (matching ``filter``)."""
        if not self.store.has_collection(self.collection):
            return 0
        return self.store.count(self.collection, self._within(parse_filter(filter)))

    def get(self, doc_id: str) -> StoredDocument | None:
        """The whole stored document ``doc_id``: its chunks in order, merged into its text with
        their overlap removed, with its metadata and source (``None`` when it is not stored, or
        belongs to another tenant than this retriever's).

        Raises:
            InputError: for an invalid id, or, read without a tenant scope, an id that several
                tenants hold (read it through :meth:`scoped`).
        """
        check_doc_id(doc_id, "get()")
        if not self.store.has_collection(self.collection):
            return None
        return read_document(
            self.store, self.collection, doc_id, scope=self.scope, tenant_field=self.settings.tenant_field
        )

    def optimize(self) -> None:
        """Build the HNSW and payload indexes after a bulk ingest (Qdrant Edge needs this)."""
        if self.store.has_collection(self.collection):
            self.store.optimize(self.collection)

    # -- the collection's own defaults, and what it is -------------------------------
    def save_search_defaults(self, settings: SearchConfig | Mapping[str, Any]) -> dict[str, Any]:
        """Save search defaults with the collection: every retriever that opens it afterwards
        (Python, CLI, adapters, MCP) uses them unless it sets the setting itself.

        They replace the defaults saved before. This retriever uses them at once, except
        ``query_instruction``, which the dense encoder reads when the collection is opened.

        Args:
            settings: A :class:`SearchConfig` (its savable settings that are set) or a mapping
                of any of :data:`~m3retriever.config.saved.SAVABLE` (``tune(..., save=True)``
                passes its best setting).

        Returns:
            The saved values.

        Raises:
            ConfigError: for a setting a collection cannot keep, or a bad value.
        """
        check_saved(self.collection, as_values(settings))  # before the collection is created
        self._ensure_collection()
        return self.opened.save_defaults(settings)

    def clear_search_defaults(self) -> None:
        """Remove the collection's own search defaults (the profile's apply again)."""
        self.opened.clear_defaults()

    @property
    def search_defaults(self) -> dict[str, Any]:
        """The collection's own search defaults this retriever opened with (or saved)."""
        return dict(self.opened.saved)

    def info(self) -> dict[str, Any]:
        """Counts, sizes, models and settings of the collection."""
        return collection_info(self.opened, self.encoders, self.reranker, self.lengths(), self.count)

    def lengths(self) -> dict[str, int | None]:
        """The token lengths in force: chunks, encoders, queries, reranker pairs
        (:func:`~m3retriever.collection.lengths_in_force`)."""
        return lengths_in_force(
            self.encoders, self.reranker, self._ingestor.chunking.max_tokens, self._searcher.max_query_tokens
        )

    def warm_up(self, *, payloads: bool = False) -> int:
        """Read an embedded collection's vectors and indexes (and its payloads: ``payloads``)
        into the page cache, so that the first queries after opening it do not wait on disk;
        the bytes read (0 on a server, or when there is no collection yet)."""
        if not self.store.has_collection(self.collection):
            return 0
        return self.store.warm_up(self.collection, payloads=payloads)

    def close(self) -> None:
        """Release the store (and its lock) if this retriever opened it."""
        opened = getattr(self, "opened", None)
        if opened is not None:
            opened.close()
        self._closed = True

    def __enter__(self) -> "Retriever":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
