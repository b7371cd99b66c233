"""The collection a retriever writes to: its description for the store, and what
:meth:`~m3retriever.Retriever.info` reports about it (opening it: :mod:`m3retriever.opening`)."""

from __future__ import annotations

from typing import Any

from m3retriever.branches import EncoderSet
from m3retriever.config import Config
from m3retriever.config.built import settings_in_force
from m3retriever.ingest import Ingestor
from m3retriever.rerankers.base import Reranker
from m3retriever.search import Searcher
from m3retriever.store.index_settings import INDEX_SETTINGS
from m3retriever.store.schema import CollectionSpec, Store
from m3retriever.tenancy import Scope

__all__ = ["CollectionInfo", "collection_spec"]


class CollectionInfo:
    """The :class:`~m3retriever.Retriever` methods that describe its collection and the token
    lengths in force (a mix-in: it uses the retriever's store, components and settings)."""

    config: Config
    settings: Config
    store: Store
    encoders: EncoderSet
    reranker: Reranker | None
    scope: Scope | None
    _saved: dict[str, Any]
    _built: dict[str, Any]
    _ingestor: Ingestor
    _searcher: Searcher

    @property
    def collection(self) -> str:  # pragma: no cover - the retriever's
        raise NotImplementedError

    @property
    def search_defaults(self) -> dict[str, Any]:  # pragma: no cover - the retriever's
        raise NotImplementedError

    def count(self, filter: Any = None) -> int:  # pragma: no cover - the retriever's
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Counts, sizes, models and settings of the collection."""
        out: dict[str, Any] = {
            "profile": self.settings.profile,
            "collection": self.collection,
            "encoders": self.encoders.fingerprint(),
            "reranker": (
                {"name": self.reranker.spec.name, "model": self.reranker.spec.model}
                if self.reranker
                else None
            ),
            "search_defaults": self.search_defaults,  # the collection's own
            "tenant": self.scope.tenant if self.scope is not None else None,
            "tenant_field": self.settings.tenant_field,
            "settings": settings_in_force(self.config, self.settings, self._saved, self._built),
            "lengths": self.lengths(),
        }
        if self.store.has_collection(self.collection):
            out.update(self.store.info(self.collection))
            for name in INDEX_SETTINGS:  # an existing collection's own (fixed at its creation)
                source = "explicit" if getattr(self.config, name) is not None else "collection"
                out["settings"][name] = {"value": out["index"][name], "source": source}
            out["points"] = self.count()  # exact; the engine's is an estimate
            out["documents"] = self.count({"chunk_index": 0})
            field = self.settings.tenant_field
            out["tenant_index"] = self.store.tenant_index(self.collection, field) if field else None
        else:
            out["points"] = 0
            out["documents"] = 0
        return out

    def lengths(self) -> dict[str, int | None]:
        """The token lengths in force: chunks, encoders, queries, reranker pairs.

        ``chunk_tokens`` is the chunk size after capping to the encoders' max length,
        ``max_query_tokens`` the tokens of a query any model reads, ``rerank_max_length`` the
        tokens of a (query, passage) pair and ``rerank_query_tokens`` the query's share of it
        (the passage is cut to the rest). ``None``: no such stage.
        """
        encoder_max = self.encoders.max_length
        spec = self.reranker.spec if self.reranker else None
        return {
            "chunk_tokens": self._ingestor.chunking.max_tokens,
            "encoder_max_length": encoder_max if encoder_max < 10**9 else None,
            "max_query_tokens": self._searcher.max_query_tokens,
            "rerank_max_length": spec.max_length if spec else None,
            "rerank_query_tokens": spec.max_query_length if spec else None,
        }


def collection_spec(encoders: EncoderSet, config: Config) -> CollectionSpec:
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
