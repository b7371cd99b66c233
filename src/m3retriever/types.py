"""Plain typed values passed between the stages of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping, NamedTuple

import numpy as np

__all__ = [
    "SparseVector",
    "Encoding",
    "Section",
    "LengthStats",
    "Document",
    "Chunk",
    "StageScores",
    "Hit",
    "MatchedTerm",
    "SearchResult",
    "ChunkSpan",
    "Passage",
    "StoredDocument",
    "Distance",
    "SparseKind",
]

Distance = Literal["cosine", "dot", "euclid", "manhattan"]
SparseKind = Literal["none", "learned", "bm25"]


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector as parallel, sorted index and value tuples.

    Attributes:
        indices: Token ids (or hashed term ids), strictly increasing.
        values: One non-negative weight per index.
    """

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise ValueError("SparseVector indices and values must have the same length")

    @classmethod
    def from_mapping(cls, weights: Mapping[Any, Any]) -> "SparseVector":
        """Build from ``{token_id: weight}`` with keys/values of any int/float-like type.

        Zero or negative weights are dropped; duplicate ids are summed.
        """
        merged: dict[int, float] = {}
        for key, value in weights.items():
            weight = float(value)
            if weight > 0.0:
                idx = int(key)
                merged[idx] = merged.get(idx, 0.0) + weight
        ordered = sorted(merged.items())
        return cls(tuple(i for i, _ in ordered), tuple(v for _, v in ordered))

    def as_dict(self) -> dict[int, float]:
        """Return ``{index: value}``."""
        return dict(zip(self.indices, self.values))

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class Encoding:
    """The output of one encoder call on a batch of texts.

    Attributes:
        dense: ``(n, dim)`` float32 array, or ``None`` if the encoder is sparse only.
        sparse: One :class:`SparseVector` per text, or ``None`` if the encoder is dense only.
        multivector: One ``(n_tokens, dim)`` float32 array per text (late-interaction /
            ColBERT vectors, rows L2-normalised, no CLS or padding positions), or ``None`` if
            the encoder does not produce them (or they were not asked for).
    """

    dense: np.ndarray | None = None
    sparse: list[SparseVector] | None = None
    multivector: list[np.ndarray] | None = None

    def __len__(self) -> int:
        if self.dense is not None:
            return int(self.dense.shape[0])
        if self.sparse is not None:
            return len(self.sparse)
        return len(self.multivector or [])


@dataclass(frozen=True)
class LengthStats:
    """Totals of document lengths in a collection, from which BM25's average length comes.

    Lengths are counted in the encoder's own unit (analyzed terms for BM25) per stored chunk,
    the unit the engine's IDF counts documents in.

    Attributes:
        total: Sum of the lengths.
        count: Number of documents (chunks) counted.
    """

    total: int = 0
    count: int = 0

    @classmethod
    def of(cls, lengths: Iterable[int]) -> "LengthStats":
        """Totals of a list of lengths."""
        values = list(lengths)
        return cls(sum(values), len(values))

    def __add__(self, other: "LengthStats") -> "LengthStats":
        return LengthStats(self.total + other.total, self.count + other.count)

    @property
    def average(self) -> float | None:
        """Mean length, or ``None`` when nothing was counted (or every document was empty)."""
        return self.total / self.count if self.count and self.total > 0 else None

    def as_dict(self) -> dict[str, int]:
        """``{"total": ..., "count": ...}`` (for the collection's metadata)."""
        return {"total": self.total, "count": self.count}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "LengthStats":
        """The inverse of :meth:`as_dict`; missing or malformed data counts as empty."""
        if not isinstance(data, Mapping):
            return cls()
        try:
            return cls(max(0, int(data.get("total", 0))), max(0, int(data.get("count", 0))))
        except (TypeError, ValueError):
            return cls()


@dataclass(frozen=True)
class Section:
    """A span of a document's text: what a file reader found there (:mod:`m3retriever.readers`)
    and what the chunker cuts by (:mod:`m3retriever.ingest.chunking`).

    Attributes:
        kind: ``"section"`` (the text under a heading, up to the next heading), ``"page"`` (a
            PDF page), ``"cell"`` (a notebook cell), ``"code"`` or ``"table"``.
        start: Offset of its first character in the document's text.
        end: Offset just after its last character.
        headings: The heading path it lies under, outermost first (``("Tutorial", "Query
            Parameters")``); for a ``"section"``, ending with its own heading.
        page: The page number (from 1) of a ``"page"``.
        label: More about it: a notebook cell's type (``"markdown"``, ``"code"``), a heading's
            level as text.
    """

    kind: str
    start: int
    end: int
    headings: tuple[str, ...] = ()
    page: int | None = None
    label: str | None = None


@dataclass(frozen=True)
class Document:
    """A document to ingest.

    Attributes:
        text: The full text. Must be a non-empty string.
        doc_id: Stable identifier; re-ingesting the same id replaces the document.
        metadata: JSON-serialisable user metadata, stored with every chunk and filterable.
        source: Where the text came from (a path, URL, dataset name).
        structure: Its sections, pages, cells, code blocks and tables, spans of ``text`` in
            text order (a folder ingest takes them from the file readers). With them, chunks
            are cut at headings first and record their heading path and pages; without them
            (the default), by token count alone.
    """

    text: str
    doc_id: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    structure: tuple[Section, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """One token-bounded window of a document.

    Attributes:
        doc_id: Parent document id.
        chunk_index: Position of the chunk in the document, from 0.
        text: The chunk's text (a slice of the document).
        start: Character offset of the chunk in the document.
        end: Character offset one past the chunk's last character.
        headings: The heading path the chunk lies under, outermost first (empty for a document
            without structure).
        pages: The PDF pages the chunk spans (empty when the document has no pages).
    """

    doc_id: str
    chunk_index: int
    text: str
    start: int
    end: int
    headings: tuple[str, ...] = ()
    pages: tuple[int, ...] = ()


class ChunkSpan(NamedTuple):
    """Where one chunk lies in a merged text (:class:`Passage`, :class:`StoredDocument`).

    Attributes:
        chunk_index: The chunk's position in its document.
        start: Character offset of the chunk's first character in the merged text.
        end: Character offset one past its last character.
    """

    chunk_index: int
    start: int
    end: int


@dataclass(frozen=True)
class Passage:
    """A hit's chunk with up to N neighbouring chunks of its document on each side, merged into
    one text with their overlap removed (search option ``expand``).

    Attributes:
        text: The merged passage.
        start: Character offset of the hit's own chunk in ``text``.
        end: Character offset one past the hit's chunk in ``text``
            (``text[start:end]`` is the hit's text).
        chunks: Each merged chunk's span in ``text``, in document order.
    """

    text: str
    start: int
    end: int
    chunks: tuple[ChunkSpan, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly representation."""
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "chunks": [list(c) for c in self.chunks],
        }


@dataclass(frozen=True)
class StoredDocument:
    """A whole stored document read back from its chunks (:meth:`Retriever.get`).

    Attributes:
        doc_id: The document id.
        text: The document's text: its chunks in order, their overlap removed (equal to the
            text that was ingested when every chunk is stored).
        chunks: Each chunk's span in ``text``, in order.
        metadata: The document's user metadata.
        source: The document's source, if known.
        complete: False when chunks are missing (between two stored chunks that do not meet,
            ``text`` holds a blank line, :data:`GAP`).
    """

    doc_id: str
    text: str
    chunks: tuple[ChunkSpan, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    complete: bool = True

    def as_document(self) -> Document:
        """The document as a :class:`Document` (to ingest it again, elsewhere)."""
        return Document(self.text, self.doc_id, dict(self.metadata), self.source)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly representation."""
        return {
            "doc_id": self.doc_id,
            "text": self.text,
            "chunks": [list(c) for c in self.chunks],
            "metadata": dict(self.metadata),
            "source": self.source,
            "complete": self.complete,
        }


GAP = "\n\n"
"""What a merged text holds where chunks between two stored ones are missing."""


@dataclass(frozen=True)
class StageScores:
    """Each stage's score and 1-based rank for one hit (``None`` where a stage did not see it).

    Attributes:
        dense: Dense similarity as computed by the store's distance.
        dense_rank: Rank in the dense branch.
        sparse: Learned-sparse dot product (or BM25 score if that is the only sparse branch).
        sparse_rank: Rank in the sparse branch.
        bm25: BM25 score (IDF applied by the engine).
        bm25_rank: Rank in the BM25 branch.
        dense2: Similarity in the extra dense branch (``dense2``), where it exists.
        dense2_rank: Rank in that branch.
        fused: Score after fusion (RRF or DBSF) in the engine.
        fused_rank: Rank after fusion.
        multivector: Late-interaction (ColBERT) MaxSim score of the fused candidate, divided by
            the query's number of token vectors (FlagEmbedding's ``colbert_score``), when the
            search rescored the fused candidates by it.
        multivector_rank: Rank after that rescoring (the order the reranker reads).
        rerank_logit: Raw cross-encoder logit.
        rerank: ``sigmoid(rerank_logit)``, the model's own probability (not calibrated on any
            collection: see ``confidence``).
        rerank_rank: Rank by the cross-encoder alone.
        confidence: How likely the hit is relevant, in [0, 1], comparable across queries and
            collections: the rerank logit through the collection's calibration
            (``sigmoid(confidence_slope * rerank_logit + confidence_bias)``, fitted on labelled
            queries; ``m3retriever tune`` refits it). ``None`` where no reranker read the hit.
        final: The score the hit is ordered by. It is relative to this result list (the
            rerank and fused scores min-max scaled over the candidates and interpolated), so
            the top hit is near 1 whether or not it is relevant: read ``confidence`` for
            "how sure".
        final_rank: Final 1-based rank.
        relevance_rank: Rank by ``final`` alone, before ``max_per_doc``/``mmr`` reordered the
            hits (``None`` when neither is set).
        doc_best_rank: ``relevance_rank`` of the best chunk of this hit's document (``None``
            when neither is set).
    """

    dense: float | None = None
    dense_rank: int | None = None
    sparse: float | None = None
    sparse_rank: int | None = None
    bm25: float | None = None
    bm25_rank: int | None = None
    dense2: float | None = None
    dense2_rank: int | None = None
    fused: float | None = None
    fused_rank: int | None = None
    multivector: float | None = None
    multivector_rank: int | None = None
    rerank_logit: float | None = None
    rerank: float | None = None
    rerank_rank: int | None = None
    confidence: float | None = None
    final: float = 0.0
    final_rank: int = 0
    relevance_rank: int | None = None
    doc_best_rank: int | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        """Return the scores as a flat dict (JSON-friendly)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class MatchedTerm:
    """A query word found in a hit's text.

    Attributes:
        term: The query's word (lowercased), never a subword piece.
        spans: ``(start, end)`` character offsets into :attr:`Hit.text` of every occurrence
            (``text[start:end]`` is the word as written there, e.g. ``"Qdrant"`` or, with a
            stemming analyzer, ``"runs"`` for the term ``"running"``), in order.
    """

    term: str
    spans: tuple[tuple[int, int], ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly representation: ``{"term": ..., "spans": [[start, end], ...]}``."""
        return {"term": self.term, "spans": [list(span) for span in self.spans]}


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        id: The chunk's point id (UUIDv5 of doc id and chunk index).
        doc_id: The parent document id.
        chunk_index: Position of the chunk in its document.
        text: The chunk text.
        source: The document's source, if known.
        metadata: User metadata of the document.
        scores: Per-stage scores and ranks.
        matched_terms: The query's words found in :attr:`text` (after the word analyzer:
            case folded, stemmed when the retriever has a BM25 encoder), in the query's order;
            the terms of :attr:`matches`.
        matches: Each of :attr:`matched_terms` with the character spans of its occurrences
            in :attr:`text`, to highlight or cite them (:mod:`m3retriever.search.matching`).
        context: The chunk with its neighbouring chunks merged into one passage (search option
            ``expand``); ``None`` when not asked for.
        headings: The heading path the chunk lies under (:attr:`Chunk.headings`; empty for
            a document ingested without structure).
        pages: The PDF pages the chunk spans (:attr:`Chunk.pages`).
    """

    id: str
    doc_id: str
    chunk_index: int
    text: str
    source: str | None
    metadata: Mapping[str, Any]
    scores: StageScores
    matched_terms: tuple[str, ...] = ()
    context: Passage | None = None
    matches: tuple[MatchedTerm, ...] = ()
    headings: tuple[str, ...] = ()
    pages: tuple[int, ...] = ()

    @property
    def score(self) -> float:
        """The final score (the one the hits are ordered by; relative to this result list)."""
        return self.scores.final

    @property
    def confidence(self) -> float | None:
        """How likely this hit is relevant, in [0, 1] (:attr:`StageScores.confidence`)."""
        return self.scores.confidence

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly representation."""
        return {
            "id": self.id,
            "doc_id": self.doc_id,
            "chunk_index": self.chunk_index,
            "text": self.text,
            "source": self.source,
            "metadata": dict(self.metadata),
            "confidence": self.confidence,
            "scores": self.scores.as_dict(),
            "matched_terms": list(self.matched_terms),
            "matches": [m.as_dict() for m in self.matches],
            "context": self.context.as_dict() if self.context is not None else None,
            "headings": list(self.headings),
            "pages": list(self.pages),
        }


@dataclass(frozen=True)
class SearchResult:
    """Hits for one query.

    Attributes:
        query: The query text as searched (cut to ``Config.max_query_tokens`` tokens).
        hits: Ranked hits, best first.
        no_confident_match: True when ``min_score`` was set and no hit reached it.
        timings_ms: Wall time of each stage in milliseconds (encode, search, rerank, total;
            with adaptive fusion, search split into branches and fuse).
        branch_weights: The RRF weight each searched branch had in this query's fusion (with
            ``adaptive`` search, adapted to the query from the configured ones).
    """

    query: str
    hits: list[Hit]
    no_confident_match: bool = False
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    branch_weights: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly representation."""
        return {
            "query": self.query,
            "no_confident_match": self.no_confident_match,
            "timings_ms": dict(self.timings_ms),
            "branch_weights": dict(self.branch_weights),
            "hits": [h.as_dict() for h in self.hits],
        }

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, item: int) -> Hit:
        return self.hits[item]
