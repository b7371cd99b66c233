"""The set of encoders behind a retriever's branches (dense, learned sparse, BM25).

When the dense and sparse branches use the same encoder (BGE-M3), one forward pass gives both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from m3retriever.encoders.base import Encoder
from m3retriever.errors import ConfigError
from m3retriever.store.schema import BM25, DENSE, SPARSE, CollectionSpec
from m3retriever.types import Encoding, SparseVector

__all__ = ["BranchVectors", "EncoderSet"]


@dataclass(frozen=True)
class BranchVectors:
    """Vectors of a batch of texts, per branch (``None`` where the branch is absent)."""

    dense: np.ndarray | None
    sparse: list[SparseVector] | None
    bm25: list[SparseVector] | None

    def __len__(self) -> int:
        for v in (self.dense, self.sparse, self.bm25):
            if v is not None:
                return len(v)
        return 0


class EncoderSet:
    """The encoders of one retriever.

    Args:
        dense: Encoder of the dense branch, or ``None``.
        sparse: Encoder of the learned sparse branch, or ``None`` (may be ``dense``).
        bm25: Encoder of the BM25 branch, or ``None``.
        dims: Matryoshka truncation applied to dense vectors.
    """

    def __init__(
        self,
        dense: Encoder | None,
        sparse: Encoder | None,
        bm25: Encoder | None,
        dims: int | None = None,
    ) -> None:
        if dense is None and sparse is None and bm25 is None:
            raise ConfigError("a retriever needs at least one of a dense, sparse or BM25 encoder")
        if dense is not None and not dense.spec.produces_dense:
            raise ConfigError(f"encoder {dense.spec.name!r} produces no dense vectors")
        if sparse is not None and sparse.spec.sparse_kind != "learned":
            raise ConfigError(f"encoder {sparse.spec.name!r} produces no learned sparse vectors")
        if bm25 is not None and bm25.spec.sparse_kind != "bm25":
            raise ConfigError(f"encoder {bm25.spec.name!r} is not a BM25 encoder")
        self.dense = dense
        self.sparse = sparse
        self.bm25 = bm25
        self.dims = dims
        if dims is not None and dense is not None:
            allowed = dense.spec.matryoshka_dims
            if dims not in allowed:
                raise ConfigError(
                    f"dims={dims} is not supported by {dense.spec.name!r} "
                    f"({'allowed: ' + str(list(allowed)) if allowed else 'no Matryoshka truncation'})"
                )

    @property
    def chunking_encoder(self) -> Encoder:
        """The encoder whose tokenizer bounds chunks (dense first, then sparse, then BM25)."""
        return next(e for e in (self.dense, self.sparse, self.bm25) if e is not None)

    @property
    def max_length(self) -> int:
        """The smallest model max length among the neural encoders."""
        lengths = [e.spec.max_length for e in (self.dense, self.sparse) if e is not None]
        return min(lengths) if lengths else 10**9

    def fingerprint(self) -> dict[str, Any]:
        """Identity of the encoders, recorded with the collection."""
        fp: dict[str, Any] = {
            DENSE: self.dense.spec.fingerprint() if self.dense else None,
            SPARSE: self.sparse.spec.fingerprint() if self.sparse else None,
            BM25: self.bm25.spec.fingerprint() if self.bm25 else None,
        }
        if self.dims is not None:
            fp["dims"] = self.dims
        return fp

    def collection_spec(
        self, name: str, indexed_fields: tuple[str, ...] = (), distance: str | None = None
    ) -> CollectionSpec:
        """The collection these encoders write to (``distance`` overrides the encoder's)."""
        dim = None
        if self.dense is not None:
            dim = self.dims or self.dense.spec.dense_dim
        dist = distance or (self.dense.spec.distance if self.dense else "cosine")
        fingerprint = self.fingerprint()
        if self.dense is not None and dist != self.dense.spec.distance:
            fingerprint["distance"] = dist
        return CollectionSpec(
            name=name,
            dense_dim=dim,
            distance=dist,  # type: ignore[arg-type]
            sparse=self.sparse is not None,
            sparse_idf=bool(self.sparse and self.sparse.spec.sparse_idf),
            bm25=self.bm25 is not None,
            fingerprint=fingerprint,
            indexed_fields=indexed_fields,
        )

    def _run(self, texts: Sequence[str], query: bool) -> BranchVectors:
        cache: dict[int, Encoding] = {}

        def enc(e: Encoder) -> Encoding:
            if id(e) not in cache:
                cache[id(e)] = e.encode_query(texts) if query else e.encode_document(texts)
            return cache[id(e)]

        dense = None
        if self.dense is not None:
            dense = enc(self.dense).dense
            if dense is None:
                raise ConfigError(f"encoder {self.dense.spec.name!r} returned no dense vectors")
            dense = np.asarray(dense, dtype=np.float32)
            if self.dims is not None:
                dense = dense[:, : self.dims]
                norms = np.linalg.norm(dense, axis=1, keepdims=True)
                dense = dense / np.maximum(norms, 1e-12)
        sparse = enc(self.sparse).sparse if self.sparse is not None else None
        bm25 = enc(self.bm25).sparse if self.bm25 is not None else None
        return BranchVectors(dense, sparse, bm25)

    def encode_document(self, texts: Sequence[str]) -> BranchVectors:
        """Encode passages for every branch."""
        return self._run(texts, query=False)

    def encode_query(self, texts: Sequence[str]) -> BranchVectors:
        """Encode queries for every branch."""
        return self._run(texts, query=True)
