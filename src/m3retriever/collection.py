"""The collection a retriever writes to: its description for the store (from its encoders) and
the token lengths in force (opening it: :mod:`m3retriever.opening`; what ``info`` reports:
:mod:`m3retriever.maintenance.info`)."""

from __future__ import annotations

from m3retriever.branches import EncoderSet
from m3retriever.config.settings import Settings
from m3retriever.ingest.headers import FINGERPRINT_KEY as CHUNK_HEADERS
from m3retriever.rerankers.base import Reranker
from m3retriever.store.index_settings import INDEX_SETTINGS
from m3retriever.store.schema import CollectionSpec

__all__ = ["collection_spec", "lengths_in_force"]


def lengths_in_force(
    encoders: EncoderSet, reranker: Reranker | None, chunk_tokens: int, max_query_tokens: int
) -> dict[str, int | None]:
    """The token lengths in force: chunks, encoders, queries, reranker pairs.

    ``chunk_tokens`` is the chunk size after capping to the encoders' max length,
    ``max_query_tokens`` the tokens of a query any model reads, ``rerank_max_length`` the
    tokens of a (query, passage) pair and ``rerank_query_tokens`` the query's share of it
    (the passage is cut to the rest). ``None``: no such stage.
    """
    encoder_max = encoders.max_length
    spec = reranker.spec if reranker else None
    return {
        "chunk_tokens": chunk_tokens,
        "encoder_max_length": encoder_max if encoder_max < 10**9 else None,
        "max_query_tokens": max_query_tokens,
        "rerank_max_length": spec.max_length if spec else None,
        "rerank_query_tokens": spec.max_query_length if spec else None,
    }


def collection_spec(encoders: EncoderSet, config: Settings) -> CollectionSpec:
    """The collection ``encoders`` write to, as the store describes it.

    Args:
        encoders: The retriever's encoders.
        config: Its resolved configuration (collection name, indexed fields, distance: the
            dense encoder's unless ``config.distance`` overrides it).
    """
    dense = encoders.dense
    dist = config.distance or (dense.spec.distance if dense else "cosine")
    fingerprint = encoders.fingerprint()
    if dense is not None and dist != dense.spec.distance:
        fingerprint["distance"] = dist
    if config.chunk_headers != "off":  # absent otherwise: collections without them keep their fingerprint
        fingerprint[CHUNK_HEADERS] = config.chunk_headers
    return CollectionSpec(
        name=config.collection,
        dense_dim=(encoders.dims or dense.spec.dense_dim) if dense is not None else None,
        distance=dist,  # type: ignore[arg-type]
        sparse=encoders.sparse is not None,
        sparse_idf=bool(encoders.sparse and encoders.sparse.spec.sparse_idf),
        bm25=encoders.bm25 is not None,
        fingerprint=fingerprint,
        indexed_fields=config.indexed_fields,
        **{name: getattr(config, name) for name in INDEX_SETTINGS},
        tenant_field=config.tenant_field,
        multivector_dim=encoders.multivector_dim,
        dense2_dim=encoders.dense2.spec.dense_dim if encoders.dense2 is not None else None,
        dense2_distance=encoders.dense2.spec.distance if encoders.dense2 is not None else "cosine",
    )
