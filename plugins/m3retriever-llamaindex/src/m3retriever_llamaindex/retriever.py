"""LlamaIndex ``BaseRetriever`` backed by an m3retriever :class:`~m3retriever.Retriever`."""

from __future__ import annotations

import asyncio
from typing import Any, Iterable, Mapping

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.schema import (
    BaseNode,
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.schema import (
    Document as LlamaDocument,
)

from m3retriever import (
    Config,
    Document,
    Filter,
    Hit,
    IngestReport,
    InputError,
    Retriever,
    StoredDocument,
    parse_filter,
)
from m3retriever.plugin import CONFIDENCE_KEY, MATCHED_TERMS_KEY, SCORES_KEY, clean_metadata, hit_metadata

__all__ = [
    "M3RetrieverLlamaIndex",
    "hit_to_node",
    "stored_to_document",
    "to_m3_document",
    "ingest_llamaindex",
    "aingest_llamaindex",
    "SCORES_KEY",
    "MATCHED_TERMS_KEY",
    "REF_DOC_ID_KEY",
    "CONTEXT_KEY",
    "CHUNKS_KEY",
]


REF_DOC_ID_KEY = "ref_doc_id"
"""Metadata key holding a node's LlamaIndex ``ref_doc_id`` when nodes are ingested."""

CONTEXT_KEY = "m3r_context"
"""Metadata key of an expanded hit (``expand``): where its own chunk lies in the node's text,
``{"start", "end", "chunks": [[chunk_index, start, end], ...]}``."""

CHUNKS_KEY = "m3r_chunks"
"""Metadata key of a whole document (:meth:`M3RetrieverLlamaIndex.get_document`): each chunk's
``[chunk_index, start, end]`` in its text."""

# Kept out of the text the LLM and embedding models see (they stay on node.metadata).
_HIDDEN_KEYS = ["chunk_index", SCORES_KEY, CONFIDENCE_KEY, MATCHED_TERMS_KEY, REF_DOC_ID_KEY, CONTEXT_KEY, CHUNKS_KEY]


def hit_to_node(hit: Hit) -> NodeWithScore:
    """Convert one m3retriever :class:`~m3retriever.Hit` to a LlamaIndex ``NodeWithScore``.

    The ``TextNode`` keeps the chunk id (``node.node_id == hit.id``) and text; its metadata is
    the user metadata plus ``doc_id``, ``source``, ``chunk_index``, ``m3r_scores`` (every
    stage's score and rank) and, when known, ``m3r_confidence`` (how likely the hit is relevant,
    in [0, 1], comparable across queries) and ``m3r_matched_terms``. The node's ``SOURCE``
    relationship (``node.ref_doc_id``) is the ingested LlamaIndex ``ref_doc_id`` if the chunk
    came from a node, else the document id; its ``PARENT`` relationship is the stored
    document (``M3RetrieverLlamaIndex.get_document(node.parent_node.node_id)`` returns it
    whole). A hit searched with ``expand`` has its passage (the chunk and its neighbours,
    merged) as text and the chunk's own span in it under :data:`CONTEXT_KEY`. ``score`` is
    ``hit.scores.final`` (the ordering score, relative to the result list; the confidence
    comparable across queries is ``m3r_confidence``).
    """
    metadata = hit_metadata(hit)
    ref = hit.metadata.get(REF_DOC_ID_KEY)
    ref_doc_id = ref if isinstance(ref, str) and ref else hit.doc_id
    text = hit.text
    if hit.context is not None:
        c = hit.context
        text = c.text
        metadata[CONTEXT_KEY] = {"start": c.start, "end": c.end, "chunks": [list(span) for span in c.chunks]}
    node = TextNode(
        id_=hit.id,
        text=text,
        metadata=metadata,
        excluded_llm_metadata_keys=list(_HIDDEN_KEYS),
        excluded_embed_metadata_keys=list(_HIDDEN_KEYS),
        relationships={
            NodeRelationship.SOURCE: RelatedNodeInfo(node_id=ref_doc_id),
            NodeRelationship.PARENT: RelatedNodeInfo(node_id=hit.doc_id),
        },
    )
    return NodeWithScore(node=node, score=hit.scores.final)


def stored_to_document(doc: StoredDocument) -> LlamaDocument:
    """A whole stored document as a LlamaIndex ``Document``: its id (``doc_id``), text, user
    metadata, ``doc_id`` and ``source``, and each chunk's span under :data:`CHUNKS_KEY`
    (re-ingesting it stores the same document again)."""
    metadata = {**doc.metadata, "doc_id": doc.doc_id, "source": doc.source}
    metadata[CHUNKS_KEY] = [list(span) for span in doc.chunks]
    return LlamaDocument(
        id_=doc.doc_id,
        text=doc.text,
        metadata=metadata,
        excluded_llm_metadata_keys=list(_HIDDEN_KEYS),
        excluded_embed_metadata_keys=list(_HIDDEN_KEYS),
    )


def to_m3_document(item: BaseNode) -> Document:
    """Map a LlamaIndex ``Document`` or node to an m3retriever :class:`~m3retriever.Document`.

    * ``doc_id``: ``metadata["doc_id"]`` if it is a non-empty string; else
      ``Document.doc_id`` for a LlamaIndex ``Document``; else the node's ``node_id`` (a
      pre-chunked node is stored as its own document, so ids stay unique and re-ingesting
      a node replaces it). A node's ``ref_doc_id`` is kept in metadata as ``ref_doc_id``:
      filter or delete by it (``retriever.delete(filter={"ref_doc_id": ...})``), and
      retrieved nodes get it back as their ``ref_doc_id``.
    * ``source``: ``metadata["source"]``, else ``metadata["file_path"]`` (what LlamaIndex
      readers set), if a string.
    * ``metadata``: cleaned by the rule in :mod:`m3retriever.metadata` (JSON
      values only; reserved keys taken out).
    * ``text``: the node's content without metadata.

    Raises:
        InputError: for objects that are not LlamaIndex nodes.
    """
    if not isinstance(item, BaseNode):
        raise InputError(
            f"expected a LlamaIndex Document or node, got {type(item).__name__}"
        )
    raw = dict(item.metadata or {})
    explicit = raw.get("doc_id")
    if isinstance(explicit, str) and explicit.strip():
        doc_id = explicit
    elif isinstance(item, LlamaDocument):
        doc_id = item.doc_id
    else:
        doc_id = item.node_id
    metadata = clean_metadata(raw, where=f"LlamaIndex node {doc_id!r}")
    if not isinstance(item, LlamaDocument):
        ref = item.ref_doc_id
        if ref and ref != doc_id:
            metadata[REF_DOC_ID_KEY] = ref
    source = raw.get("source")
    if not isinstance(source, str):
        source = raw.get("file_path") if isinstance(raw.get("file_path"), str) else None
    return Document(
        text=item.get_content(metadata_mode=MetadataMode.NONE),
        doc_id=doc_id,
        metadata=metadata,
        source=source,
    )


def _to_documents(documents_or_nodes: Iterable[BaseNode]) -> list[Document]:
    if isinstance(documents_or_nodes, (BaseNode, str, bytes, Mapping)):
        raise InputError(
            "ingest_llamaindex() takes a list of LlamaIndex Documents or nodes; "
            "wrap a single one in a list"
        )
    return [to_m3_document(item) for item in documents_or_nodes]


def ingest_llamaindex(retriever: Retriever, documents_or_nodes: Iterable[BaseNode]) -> IngestReport:
    """Ingest LlamaIndex ``Document`` objects and/or nodes (``TextNode``...) into ``retriever``.

    See :func:`to_m3_document` for how ids, source and metadata are mapped. Documents are
    chunked by m3retriever; a node shorter than ``chunk_tokens`` is stored as one chunk.

    Returns:
        The retriever's :class:`~m3retriever.IngestReport`.
    """
    return retriever.ingest(_to_documents(documents_or_nodes))


async def aingest_llamaindex(
    retriever: Retriever, documents_or_nodes: Iterable[BaseNode]
) -> IngestReport:
    """:func:`ingest_llamaindex` in a worker thread, so the event loop keeps running."""
    return await retriever.aingest(_to_documents(documents_or_nodes))


class M3RetrieverLlamaIndex(BaseRetriever):
    """A LlamaIndex retriever over an m3retriever :class:`~m3retriever.Retriever`.

    Use it wherever LlamaIndex takes a retriever, for example
    ``RetrieverQueryEngine.from_args(M3RetrieverLlamaIndex(r), llm=llm)``.

    Args:
        retriever: The m3retriever retriever (share one per store: ``Retriever.shared``).
        top_k: Nodes returned per query (default: the retriever's ``search.top_k``).
        filter: An m3retriever filter applied to every query: a mapping such as
            ``{"lang": "en", "year": {"gte": 2020}}`` or a :mod:`m3retriever.filters` object.
        search_options: Other :class:`~m3retriever.SearchConfig` fields for every query
            (``{"rerank": False}``, ``{"min_score": 0.5}``...).
        max_per_doc: At most this many chunks of one document per query (``None``: the
            retriever's setting).
        mmr: MMR diversity, 0 (relevance only) to 1 (``None``: the retriever's setting).
        expand: Return each node as its passage: the chunk and up to this many neighbouring
            chunks of its document on each side, merged (0 to 20; ``None``: the retriever's
            setting). The whole document: :meth:`get_document`.
        callback_manager: LlamaIndex callback manager.
        verbose: LlamaIndex verbosity.

    Raises:
        InputError: for an invalid filter or ``top_k`` (at construction, not at the first
            query).
        ConfigError: for an invalid search option, ``max_per_doc`` or ``mmr`` (at construction).
    """

    def __init__(
        self,
        retriever: Retriever,
        *,
        top_k: int | None = None,
        filter: Filter | Mapping[str, Any] | None = None,
        search_options: Mapping[str, Any] | None = None,
        max_per_doc: int | None = None,
        mmr: float | None = None,
        expand: int | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(retriever, Retriever):
            raise InputError(
                f"M3RetrieverLlamaIndex wraps an m3retriever.Retriever, got {type(retriever).__name__}"
            )
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise InputError(f"top_k must be a positive integer, got {top_k!r}")
        parse_filter(filter)  # fail fast on a bad filter
        self._retriever = retriever
        self.top_k = top_k
        self.filter = filter
        named = (("max_per_doc", max_per_doc), ("mmr", mmr), ("expand", expand))
        diversity = {k: v for k, v in named if v is not None}
        self.search_options = {**diversity, **dict(search_options or {})}
        retriever.search_settings(**self.search_options)  # fail fast on a bad option
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @classmethod
    def from_config(cls, config: Config | None = None, **options: Any) -> "M3RetrieverLlamaIndex":
        """Wrap the process-wide retriever for ``config`` (:meth:`Retriever.shared`)."""
        return cls(Retriever.shared(config), **options)

    @property
    def m3_retriever(self) -> Retriever:
        """The wrapped m3retriever :class:`~m3retriever.Retriever`."""
        return self._retriever

    def get_document(self, doc_id: str) -> LlamaDocument | None:
        """The whole stored document ``doc_id`` (a retrieved node's ``PARENT``, or its
        ``metadata["doc_id"]``) as a LlamaIndex ``Document`` (:func:`stored_to_document`);
        ``None`` if it is not stored.

        Raises:
            InputError: for an invalid id.
        """
        doc = self._retriever.get(doc_id)
        return stored_to_document(doc) if doc is not None else None

    async def aget_document(self, doc_id: str) -> LlamaDocument | None:
        """:meth:`get_document` in a worker thread, so the event loop keeps running."""
        return await asyncio.to_thread(self.get_document, doc_id)

    def ingest(self, documents_or_nodes: Iterable[BaseNode]) -> IngestReport:
        """Ingest LlamaIndex documents or nodes (see :func:`ingest_llamaindex`)."""
        return ingest_llamaindex(self._retriever, documents_or_nodes)

    async def aingest(self, documents_or_nodes: Iterable[BaseNode]) -> IngestReport:
        """:meth:`ingest` without blocking the event loop."""
        return await aingest_llamaindex(self._retriever, documents_or_nodes)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        result = self._retriever.search(
            query_bundle.query_str, top_k=self.top_k, filter=self.filter, **self.search_options
        )
        return [hit_to_node(hit) for hit in result]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # asearch runs the (CPU/GPU-bound) search in a worker thread: the loop keeps running.
        result = await self._retriever.asearch(
            query_bundle.query_str, top_k=self.top_k, filter=self.filter, **self.search_options
        )
        return [hit_to_node(hit) for hit in result]
