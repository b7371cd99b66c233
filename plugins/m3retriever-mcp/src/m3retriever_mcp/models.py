"""Typed arguments and results of the MCP tools.

These pydantic models are what the MCP SDK turns into each tool's ``inputSchema`` and
``outputSchema``, so a client (and the model driving it) sees real JSON schemas rather than
free-form objects.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from m3retriever import InputError, parse_filter
from m3retriever.plugin import (
    INT64_MAX,
    INT64_MIN,
    MAX_ID_CHARS,
    MAX_METADATA_DEPTH,
    MAX_QUERY_CHARS,
    MAX_SOURCE_CHARS,
    check_doc_id,
    check_field,
    check_query,
    check_source,
)

__all__ = [
    "FIELD_PATTERN",
    "library_check",
    "Query",
    "TopK",
    "MinScore",
    "Diversity",
    "DocId",
    "FiniteNumber",
    "Int64",
    "FilterField",
    "Scalar",
    "AnyOfCondition",
    "RangeCondition",
    "NotCondition",
    "FilterCondition",
    "FilterSpec",
    "filter_to_mapping",
    "StageScoresOut",
    "HitOut",
    "MatchOut",
    "SearchOutput",
    "DocumentIn",
    "IngestOutput",
    "DeleteOutput",
    "CollectionInfo",
    "CollectionName",
    "ChunkIndex",
]

FIELD_PATTERN = r"^[\w-]+(\.[\w-]+)*$"
"""The key rule of :func:`m3retriever.validation.check_field` as a JSON-schema pattern (published
only: the library's own check decides, so its message is what the agent reads)."""


def library_check(check: Callable[..., Any], *args: Any) -> AfterValidator:
    """A pydantic validator running one of m3retriever's own checks.

    The library's :class:`~m3retriever.errors.InputError` becomes the ``ValueError`` pydantic
    expects, so an argument that the library would refuse is refused while the arguments are
    validated, with the library's message (the problem and the fix).

    Args:
        check: A :mod:`m3retriever.validation` function taking the value first.
        *args: Its further arguments (e.g. ``where``).
    """

    def run(value: Any) -> Any:
        try:
            return check(value, *args)
        except InputError as exc:
            raise ValueError(str(exc)) from None

    return AfterValidator(run)


Query = Annotated[
    StrictStr,
    Field(
        description="What to look for, in natural language.",
        json_schema_extra={"minLength": 1, "maxLength": MAX_QUERY_CHARS},
    ),
    library_check(check_query),
]
"""A query: non-blank, at most :data:`~m3retriever.validation.MAX_QUERY_CHARS` characters."""

TopK = Annotated[StrictInt, Field(ge=1, description="Number of passages to return.")]
"""A strict integer: ``"5"``, ``2.5`` and ``true`` are refused, not coerced."""

FiniteNumber = Annotated[StrictFloat, Field(allow_inf_nan=False)]
"""A finite JSON number (an integer is accepted); not a boolean, not a string."""

MinScore = Annotated[FiniteNumber, Field(ge=0.0, le=1.0)]

Diversity = Annotated[FiniteNumber, Field(ge=0.0, le=1.0)]
"""MMR's weight of novelty against relevance, in [0, 1]."""

Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
"""An integer the store can hold (signed 64 bits)."""

CollectionName = Annotated[
    StrictStr,
    Field(
        description="Which served collection (list_collections names them); leave it out for the default one.",
        json_schema_extra={"minLength": 1, "maxLength": 64},
    ),
]
"""A collection name; the allow-list check is the server's (its message lists the names)."""

ChunkIndex = Annotated[StrictInt, Field(ge=0, le=INT64_MAX)]
"""A chunk's position in its document, from 0."""

DocId = Annotated[
    StrictStr,
    Field(json_schema_extra={"minLength": 1, "maxLength": MAX_ID_CHARS}),
    library_check(check_doc_id, "document"),
]

FilterField = Annotated[StrictStr, library_check(check_field)]
"""A filter field: a reserved field or dot-separated metadata keys (the library's key rule)."""

# Equality works on strings, integers and booleans (floats are compared with a range).
# Strict types keep `true` a boolean and `"5"` a string instead of coercing between them.
Scalar = Union[StrictBool, Int64, StrictStr]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnyOfCondition(_Closed):
    """The field equals one of these values (all strings or all integers)."""

    any: Annotated[list[StrictStr], Field(min_length=1)] | Annotated[list[Int64], Field(min_length=1)] = (
        Field(description="Accepted values.")
    )


class RangeCondition(_Closed):
    """Numeric range on the field; give at least one bound (finite numbers, not booleans)."""

    gte: FiniteNumber | None = Field(default=None, description="Greater than or equal to.")
    gt: FiniteNumber | None = Field(default=None, description="Strictly greater than.")
    lte: FiniteNumber | None = Field(default=None, description="Less than or equal to.")
    lt: FiniteNumber | None = Field(default=None, description="Strictly less than.")

    @model_validator(mode="after")
    def _one_bound(self) -> "RangeCondition":
        if self.gte is None and self.gt is None and self.lte is None and self.lt is None:
            raise ValueError("a range needs at least one of gte, gt, lte, lt")
        return self


class NotCondition(_Closed):
    """The field is not equal to this value."""

    not_: Scalar = Field(alias="not", description="The excluded value.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


FilterCondition = Annotated[
    Union[Scalar, list[StrictStr], list[Int64], AnyOfCondition, RangeCondition, NotCondition],
    Field(
        description=(
            "A value (equality), a list or {'any': [...]} (one of), {'gte'|'gt'|'lte'|'lt': number} "
            "(range) or {'not': value} (inequality)."
        )
    ),
]


def _precheck_filter(value: Any) -> Any:
    """Check a filter with m3retriever's own parser first, so a bad filter gets its one clear
    message ("filter on 'year': unknown operators...") instead of one error per union arm."""
    if isinstance(value, dict):
        try:
            parse_filter(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
    return value


FilterSpec = Annotated[
    dict[FilterField, FilterCondition],
    BeforeValidator(_precheck_filter),
    Field(
        description=(
            "Metadata filter; several fields are combined with AND. Field names are metadata keys "
            "(letters, digits, '_' and '-'; 'a.b' for the key b of the object a), or 'doc_id', "
            "'source', 'chunk_index'. Example: "
            '{"lang": "en", "year": {"gte": 2020}, "topic": {"any": ["db", "ir"]}}'
        ),
        json_schema_extra={"propertyNames": {"pattern": FIELD_PATTERN}},
    ),
]


def filter_to_mapping(spec: dict[str, Any] | None) -> dict[str, Any] | None:
    """The validated filter as the plain mapping :func:`m3retriever.parse_filter` reads."""
    if not spec:
        return None
    out: dict[str, Any] = {}
    for field, cond in spec.items():
        if isinstance(cond, AnyOfCondition):
            out[field] = {"any": list(cond.any)}
        elif isinstance(cond, RangeCondition):
            out[field] = cond.model_dump(exclude_none=True)
        elif isinstance(cond, NotCondition):
            out[field] = {"not": cond.not_}
        else:
            out[field] = cond
    return out


class StageScoresOut(BaseModel):
    """Each stage's score and 1-based rank (null where a stage did not see the hit)."""

    dense: float | None = Field(description="Dense similarity.")
    dense_rank: int | None
    sparse: float | None = Field(description="Learned sparse (lexical) score.")
    sparse_rank: int | None
    bm25: float | None = Field(description="BM25 score (profiles with a BM25 branch).")
    bm25_rank: int | None
    dense2: float | None = Field(
        default=None, description="Similarity in the extra dense branch (collections with a dense2 branch)."
    )
    dense2_rank: int | None = Field(default=None, description="Rank in the extra dense branch.")
    fused: float | None = Field(description="Score after rank fusion.")
    fused_rank: int | None
    multivector: float | None = Field(
        default=None,
        description=(
            "Late-interaction (ColBERT) MaxSim score, averaged over the query's token vectors, "
            "when the fused candidates were rescored by it (collections that store them)."
        ),
    )
    multivector_rank: int | None = Field(default=None, description="Rank after the MaxSim rescoring.")
    rerank_logit: float | None = Field(description="Raw cross-encoder logit.")
    rerank: float | None = Field(description="sigmoid(rerank_logit): the model's own probability, not calibrated.")
    rerank_rank: int | None
    confidence: float | None = Field(
        default=None,
        description=(
            "How likely the passage is relevant, in [0, 1], comparable across queries and collections "
            "(the rerank logit through the collection's calibration); null where no reranker read it."
        ),
    )
    final: float = Field(
        description="The score hits are ordered by, relative to this result list (the top hit is near 1 "
        "whether or not it is relevant: read confidence for how sure)."
    )
    final_rank: int
    relevance_rank: int | None = Field(
        default=None, description="Rank by relevance alone, before max_per_doc/mmr reordered the hits."
    )
    doc_best_rank: int | None = Field(
        default=None, description="relevance_rank of the best passage of this hit's document."
    )


class MatchOut(BaseModel):
    """A query word found in a passage."""

    term: str = Field(description="The query's word.")
    spans: list[tuple[int, int]] = Field(
        description="[start, end) character offsets of each occurrence in the passage's text (text[start:end])."
    )


class HitOut(BaseModel):
    """One retrieved passage."""

    text: str = Field(description="The passage (a chunk of the document).")
    source: str | None = Field(description="Where the document came from (path, URL...).")
    doc_id: str
    chunk_index: int = Field(description="Position of the chunk in its document, from 0.")
    id: str = Field(description="The chunk's point id.")
    metadata: dict[str, Any] = Field(description="The document's metadata.")
    confidence: float | None = Field(
        default=None,
        description="How likely the passage is relevant, in [0, 1] (scores.confidence); null where no reranker read it.",
    )
    scores: StageScoresOut
    matched_terms: list[str] = Field(description="The query's words found in the passage (whole words, lowercased).")
    matches: list[MatchOut] = Field(
        default_factory=list,
        description="Each of matched_terms with where it occurs in text, to quote or highlight it.",
    )
    uri: str = Field(description="The whole document's resource URI (resources/read, or fetch with doc_id).")
    chunk_uri: str = Field(description="This chunk's resource URI (fetch with doc_id and chunk_index reads the same).")


class SearchOutput(BaseModel):
    """Search results, best first."""

    query: str
    collection: str = Field(description="The collection searched.")
    hits: list[HitOut]
    offset: int = Field(description="Hits of earlier pages (0 on the first page); final_rank counts them.")
    next_cursor: str | None = Field(
        description="Pass it as cursor, with the same arguments, for the next page; null: no more results."
    )
    no_confident_match: bool = Field(
        description="True when min_score was set and no passage reached it (hits is then empty)."
    )
    min_score: float | None = Field(description="The min_score threshold applied, if any.")
    timings_ms: dict[str, float] = Field(description="Wall time of each stage in milliseconds.")
    branch_weights: dict[str, float] = Field(
        default_factory=dict,
        description="The weight each retrieval branch had in this query's fusion (adapted to the query).",
    )


class DocumentIn(_Closed):
    """A document to add (re-adding a doc_id replaces that document)."""

    doc_id: DocId = Field(description="Stable identifier of the document.")
    text: StrictStr = Field(min_length=1, description="The full text; it is split into chunks.")
    metadata: dict[StrictStr, Any] = Field(
        default_factory=dict,
        description=(
            "JSON metadata, filterable: keys of letters, digits, '_' and '-', nested at most "
            f"{MAX_METADATA_DEPTH} levels."
        ),
    )
    source: Annotated[
        StrictStr,
        Field(json_schema_extra={"maxLength": MAX_SOURCE_CHARS}),
        library_check(check_source, "document"),
    ] | None = Field(default=None, description="Where the text came from.")


class IngestOutput(BaseModel):
    """What an ingest call did."""

    documents: int
    added: int
    updated: int
    skipped: int = Field(description="Unchanged documents (same content): nothing written.")
    chunks_written: int
    chunks_deleted: int
    seconds: float


class DeleteOutput(BaseModel):
    """What a delete call did."""

    deleted_chunks: int = Field(description="Chunks removed.")


class CollectionInfo(BaseModel):
    """Counts, sizes and models of the collection."""

    model_config = ConfigDict(extra="allow")

    profile: str
    collection: str
    documents: int
    points: int = Field(description="Chunks stored.")
    encoders: dict[str, Any] = Field(description="Identity of the dense/sparse/BM25 encoders.")
    reranker: dict[str, Any] | None = Field(description="The reranker's name and model, if any.")
    disk_bytes: int | None = Field(default=None, description="Disk used by an embedded store.")
    description: str | None = Field(default=None, description="What the collection holds, as configured.")
    tenant: str | None = Field(
        default=None, description="The tenant this server is confined to (null: the whole collection)."
    )
