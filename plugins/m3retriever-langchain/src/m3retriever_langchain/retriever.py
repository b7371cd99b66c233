"""LangChain ``BaseRetriever`` backed by an m3retriever :class:`~m3retriever.Retriever`."""

from __future__ import annotations

import asyncio
from typing import Any, Iterable, Mapping

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, field_validator

from m3retriever import (
    Config,
    Document,
    Hit,
    IngestReport,
    InputError,
    Retriever,
    SearchResult,
    StoredDocument,
    parse_filter,
)
from m3retriever.plugin import MATCHED_TERMS_KEY, SCORES_KEY, clean_metadata, hit_metadata, text_id

__all__ = [
    "M3RetrieverLangChain",
    "hit_to_document",
    "stored_to_document",
    "to_m3_document",
    "ingest_langchain",
    "aingest_langchain",
    "SCORES_KEY",
    "MATCHED_TERMS_KEY",
    "CONTEXT_KEY",
    "CHUNKS_KEY",
]

CONTEXT_KEY = "m3r_context"
"""Metadata key of an expanded hit (``expand``): where its own chunk lies in ``page_content``,
``{"start", "end", "chunks": [[chunk_index, start, end], ...]}``."""

CHUNKS_KEY = "m3r_chunks"
"""Metadata key of a whole document (:meth:`M3RetrieverLangChain.get_document`): each chunk's
``[chunk_index, start, end]`` in ``page_content``."""


def hit_to_document(hit: Hit) -> LCDocument:
    """Convert one m3retriever :class:`~m3retriever.Hit` to a LangChain ``Document``.

    ``Document.id`` is the chunk id; ``metadata`` is the user metadata plus ``doc_id`` (the
    parent document: :meth:`M3RetrieverLangChain.get_document` returns it whole),
    ``source``, ``chunk_index``, ``m3r_scores`` (every stage's score and rank, ``final``
    included) and, when known, ``m3r_confidence`` (how likely the hit is relevant, in [0, 1],
    comparable across queries) and ``m3r_matched_terms``. A hit searched with ``expand`` has its
    passage (the chunk and its neighbours, merged) as ``page_content`` and the chunk's own
    span in it under :data:`CONTEXT_KEY`.
    """
    metadata = hit_metadata(hit)
    if hit.context is None:
        return LCDocument(id=hit.id, page_content=hit.text, metadata=metadata)
    c = hit.context
    metadata[CONTEXT_KEY] = {"start": c.start, "end": c.end, "chunks": [list(span) for span in c.chunks]}
    return LCDocument(id=hit.id, page_content=c.text, metadata=metadata)


def stored_to_document(doc: StoredDocument) -> LCDocument:
    """A whole stored document as a LangChain ``Document``: ``id`` and ``metadata["doc_id"]``
    its id, its text, user metadata and ``source``, and each chunk's span under
    :data:`CHUNKS_KEY` (re-ingesting it stores the same document again)."""
    metadata = {**doc.metadata, "doc_id": doc.doc_id, "source": doc.source}
    metadata[CHUNKS_KEY] = [list(span) for span in doc.chunks]
    return LCDocument(id=doc.doc_id, page_content=doc.text, metadata=metadata)


def to_m3_document(doc: LCDocument) -> Document:
    """Map a LangChain ``Document`` to an m3retriever :class:`~m3retriever.Document`.

    * ``doc_id``: ``metadata["doc_id"]`` if it is a non-empty string, else ``Document.id``,
      else :func:`m3retriever.ingest.text_id` of the text (as ``Retriever.add_texts``).
    * ``source``: ``metadata["source"]`` if it is a string (what LangChain loaders set).
    * ``metadata``: cleaned by the rule in :mod:`m3retriever.metadata` (JSON
      values only; reserved keys taken out).

    Raises:
        InputError: for objects that are not LangChain documents.
    """
    if not isinstance(doc, LCDocument):
        raise InputError(f"expected a LangChain Document, got {type(doc).__name__}")
    raw = dict(doc.metadata or {})
    explicit = raw.get("doc_id")
    if isinstance(explicit, str) and explicit.strip():
        doc_id = explicit
    elif isinstance(doc.id, str) and doc.id.strip():
        doc_id = doc.id
    else:
        doc_id = text_id(doc.page_content)
    source = raw.get("source")
    return Document(
        text=doc.page_content,
        doc_id=doc_id,
        metadata=clean_metadata(raw, where=f"LangChain document {doc_id!r}"),
        source=source if isinstance(source, str) else None,
    )


def _to_documents(docs: Iterable[LCDocument]) -> list[Document]:
    if isinstance(docs, (LCDocument, str, bytes, Mapping)):
        raise InputError(
            "ingest_langchain() takes a list of LangChain Documents; wrap a single one in a list"
        )
    return [to_m3_document(doc) for doc in docs]


def ingest_langchain(retriever: Retriever, docs: Iterable[LCDocument]) -> IngestReport:
    """Ingest LangChain ``Document`` objects into ``retriever`` (see :func:`to_m3_document`).

    Returns:
        The retriever's :class:`~m3retriever.IngestReport`.
    """
    return retriever.ingest(_to_documents(docs))


async def aingest_langchain(retriever: Retriever, docs: Iterable[LCDocument]) -> IngestReport:
    """:func:`ingest_langchain` in a worker thread, so the event loop keeps running."""
    return await retriever.aingest(_to_documents(docs))


def _combine(base: Any, extra: Any) -> Any:
    """AND two m3retriever filters (mappings or filter objects); either may be ``None``."""
    if extra is None:
        return base
    if base is None:
        return extra
    return parse_filter(base) & parse_filter(extra)  # type: ignore[operator]


class M3RetrieverLangChain(BaseRetriever):
    """A LangChain retriever over an m3retriever :class:`~m3retriever.Retriever`.

    Build it with keyword arguments (it is a pydantic model)::

        lc = M3RetrieverLangChain(retriever=Retriever.shared(config), k=5)
        docs = lc.invoke("what is qdrant?", k=3, filter={"lang": "en"})

    Attributes:
        retriever: The m3retriever retriever (share one per store: ``Retriever.shared``).
        k: Documents returned (``None``: the retriever's ``search.top_k``). ``invoke(...,
            k=3)`` overrides it for one call.
        filter: An m3retriever filter for every call: a mapping such as
            ``{"lang": "en", "year": {"gte": 2020}}`` or a :mod:`m3retriever.filters` object.
            ``invoke(..., filter=...)`` adds a filter for one call; both must match.
        search_options: Other :class:`~m3retriever.SearchConfig` fields for every call
            (``{"rerank": False}``...). Per call, pass them as keyword arguments of
            ``invoke`` (``invoke(q, min_score=0.5)``).
        max_per_doc: At most this many chunks of one document per call (``None``: the
            retriever's setting); ``invoke(..., max_per_doc=2)`` overrides it for one call.
        mmr: MMR diversity, 0 (relevance only) to 1 (``None``: the retriever's setting);
            ``invoke(..., mmr=0.5)`` overrides it for one call.
        expand: Return each hit as its passage: the chunk and up to this many neighbouring
            chunks of its document on each side, merged (0 to 20; ``None``: the retriever's
            setting); ``invoke(..., expand=1)`` overrides it for one call. The whole
            document: :meth:`get_document` with the hit's ``metadata["doc_id"]``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Retriever
    k: int | None = Field(default=None, ge=1)
    filter: Any = None
    search_options: dict[str, Any] = Field(default_factory=dict)
    max_per_doc: int | None = Field(default=None, ge=1)
    mmr: float | None = Field(default=None, ge=0.0, le=1.0)
    expand: int | None = Field(default=None, ge=0, le=20)

    @field_validator("filter")
    @classmethod
    def _check_filter(cls, value: Any) -> Any:
        parse_filter(value)  # fail fast: raises InputError for a bad filter
        return value

    @classmethod
    def from_config(cls, config: Config | None = None, **fields: Any) -> "M3RetrieverLangChain":
        """Wrap the process-wide retriever for ``config`` (:meth:`Retriever.shared`)."""
        return cls(retriever=Retriever.shared(config), **fields)

    # -- ingest ----------------------------------------------------------------------
    def add_documents(self, documents: Iterable[LCDocument]) -> IngestReport:
        """Ingest LangChain documents (see :func:`ingest_langchain`)."""
        return ingest_langchain(self.retriever, documents)

    async def aadd_documents(self, documents: Iterable[LCDocument]) -> IngestReport:
        """:meth:`add_documents` without blocking the event loop."""
        return await aingest_langchain(self.retriever, documents)

    # -- whole documents -------------------------------------------------------------
    def get_document(self, doc_id: str) -> LCDocument | None:
        """The whole stored document ``doc_id`` (a retrieved document's ``metadata["doc_id"]``)
        as a LangChain ``Document`` (:func:`stored_to_document`); ``None`` if it is not stored.

        Raises:
            InputError: for an invalid id.
        """
        doc = self.retriever.get(doc_id)
        return stored_to_document(doc) if doc is not None else None

    async def aget_document(self, doc_id: str) -> LCDocument | None:
        """:meth:`get_document` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.get_document, doc_id)

    # -- retrieval -------------------------------------------------------------------
    def _search_args(self, k: int | None, filter: Any, options: dict[str, Any]) -> dict[str, Any]:
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise InputError(f"k must be a positive integer, got {k!r}")
        options.pop("verbose", None)  # LangChain's own invoke() option, not a search option
        return {
            "top_k": k if k is not None else self.k,
            "filter": _combine(self.filter, filter),
            "max_per_doc": self.max_per_doc,
            "mmr": self.mmr,
            "expand": self.expand,
            **self.search_options,
            **options,
        }

    @staticmethod
    def _documents(result: SearchResult) -> list[LCDocument]:
        return [hit_to_document(hit) for hit in result]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[LCDocument]:
        result = self.retriever.search(query, **self._search_args(k, filter, kwargs))
        return self._documents(result)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Any = None,
        **kwargs: Any,
    ) -> list[LCDocument]:
        # asearch runs the search in a worker thread: the event loop keeps running.
        result = await self.retriever.asearch(query, **self._search_args(k, filter, kwargs))
        return self._documents(result)
