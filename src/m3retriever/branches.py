"""The set of encoders behind a retriever's branches (dense, sparse, lexical BM25).

When the dense and sparse branches use the same encoder (BGE-M3), one forward pass gives both.

Which encoder may serve which branch:

- dense: an encoder that produces dense vectors (``spec.dense_dim`` set);
- sparse: any encoder that produces sparse vectors (``sparse_kind`` ``"learned"`` or
  ``"bm25"``); the engine applies IDF to it when ``spec.sparse_idf`` says so;
- lexical (the ``bm25`` vector): an encoder with ``sparse_kind="bm25"`` and ``sparse_idf=True``:
  term frequencies, to which the engine always applies IDF;
- multivector (the ``colbert`` late-interaction vectors, when asked for): the dense encoder
  (else the sparse one), which must declare ``spec.multivector_dim``; it returns them from the
  same forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from m3retriever.encoders.base import Encoder, LengthNormalizedEncoder
from m3retriever.errors import ConfigError
from m3retriever.store.schema import BM25, DENSE, DENSE2, MULTIVECTOR, SPARSE
from m3retriever.types import Encoding, LengthStats, SparseVector

__all__ = ["BranchVectors", "EncoderSet"]


@dataclass(frozen=True)
class BranchVectors:
    """Vectors of a batch of texts, per branch (``None`` where the branch is absent).

    Attributes:
        dense: Dense vectors, one row per text.
        sparse: Sparse-branch vectors.
        bm25: Lexical-branch vectors.
        lengths: For documents, the batch's length totals per length-normalised branch
            (:meth:`EncoderSet.length_normalized`), to add to the collection's.
        multivector: Late-interaction token vectors, one ``(n_tokens, dim)`` float32 array
            per text (``None`` unless the set was built with ``multivector=True``).
        dense2: Vectors of the extra dense branch.
    """

    dense: np.ndarray | None
    sparse: list[SparseVector] | None
    bm25: list[SparseVector] | None
    lengths: Mapping[str, LengthStats] = field(default_factory=dict)
    multivector: list[np.ndarray] | None = None
    dense2: np.ndarray | None = None

    def __len__(self) -> int:
        for v in (self.dense, self.sparse, self.bm25):
            if v is not None:
                return len(v)
        return 0


class EncoderSet:
    """The encoders of one retriever.

    Args:
        dense: Encoder of the dense branch, or ``None``.
        sparse: Encoder of the sparse branch, or ``None`` (may be ``dense``).
        bm25: Encoder of the lexical (BM25) branch, or ``None``.
        dims: Matryoshka truncation applied to dense vectors.
        multivector: Also produce the late-interaction (ColBERT) vectors, from the dense
            encoder (else the sparse one).
        dense2: Encoder of the optional extra dense branch (``dense2``), or ``None``.

    Raises:
        ConfigError: when no branch is left, an encoder cannot serve its branch (the
            message says which branch it can serve), or ``multivector`` is asked of an
            encoder that produces none.
    """

    def __init__(
        self,
        dense: Encoder | None,
        sparse: Encoder | None,
        bm25: Encoder | None,
        dims: int | None = None,
        multivector: bool = False,
        dense2: Encoder | None = None,
    ) -> None:
        if dense is None and sparse is None and bm25 is None:
            raise ConfigError("a retriever needs at least one of a dense, sparse or BM25 encoder")
        _check_branches(dense, sparse, bm25)
        self.dense = dense
        self.sparse = sparse
        self.bm25 = bm25
        self.dims = dims
        self.multivector = _multivector_encoder(dense, sparse) if multivector else None
        if dense2 is not None and not dense2.spec.produces_dense:
            raise ConfigError(f"encoder {dense2.spec.name!r} produces no dense vectors, so it cannot be dense2_encoder")
        self.dense2 = dense2
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
        if self.multivector is not None:  # only when on: fingerprints without it stay as they were
            spec = self.multivector.spec
            fp[MULTIVECTOR] = {"name": spec.name, "model": spec.model, "dim": spec.multivector_dim}
        if self.dense2 is not None:  # absent otherwise: collections without it keep their fingerprint
            fp[DENSE2] = self.dense2.spec.fingerprint()
        return fp

    @property
    def multivector_dim(self) -> int | None:
        """Size of each late-interaction token vector (``None``: the set produces none)."""
        return self.multivector.spec.multivector_dim if self.multivector is not None else None

    def length_normalized(self) -> dict[str, LengthNormalizedEncoder]:
        """The branches (``sparse``, ``bm25``) whose encoder normalises documents by the
        collection's average length, with their encoder."""
        pairs = ((SPARSE, self.sparse), (BM25, self.bm25))
        return {name: e for name, e in pairs if isinstance(e, LengthNormalizedEncoder)}

    def _run(
        self, texts: Sequence[str], query: bool, lengths: Mapping[str, LengthStats] | None = None
    ) -> BranchVectors:
        cache: dict[int, Encoding] = {}
        own: dict[int, LengthStats] = {}  # encoder id -> the batch's length totals
        branches = {} if query else self.length_normalized()
        normalized = {id(e): name for name, e in branches.items()}

        def enc(e: Encoder) -> Encoding:
            if id(e) not in cache:
                if id(e) in normalized and isinstance(e, LengthNormalizedEncoder):
                    branch = normalized[id(e)]
                    collection = (lengths or {}).get(branch, LengthStats())
                    cache[id(e)], own[id(e)] = e.encode_document_normalized(texts, collection)
                else:
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
        multivector = _multivectors(self.multivector, enc(self.multivector), len(texts)) if self.multivector else None
        dense2 = _dense_of(self.dense2, enc(self.dense2)) if self.dense2 is not None else None
        # One encoder serving both sparse branches is called once: both get its totals.
        lengths = {name: own[id(e)] for name, e in branches.items()}
        return BranchVectors(dense, sparse, bm25, lengths, multivector=multivector, dense2=dense2)

    def encode_dense2(self, texts: Sequence[str]) -> np.ndarray:
        """Passage vectors of the extra dense branch alone (no other encoder runs)."""
        if self.dense2 is None:
            raise ConfigError("no dense2_encoder is configured")
        return _dense_of(self.dense2, self.dense2.encode_document(texts))

    def encode_document(
        self, texts: Sequence[str], lengths: Mapping[str, LengthStats] | None = None
    ) -> BranchVectors:
        """Encode passages for every branch.

        Args:
            texts: Passage strings.
            lengths: The collection's length totals per length-normalised branch (missing:
                an empty collection, so the batch's own average is used).

        Returns:
            The vectors, and in ``lengths`` the batch's own totals per length-normalised branch.
        """
        return self._run(texts, query=False, lengths=lengths)

    def encode_query(self, texts: Sequence[str]) -> BranchVectors:
        """Encode queries for every branch."""
        return self._run(texts, query=True)


def _dense_of(encoder: Encoder, encoding: Encoding) -> np.ndarray:
    if encoding.dense is None:
        raise ConfigError(f"encoder {encoder.spec.name!r} returned no dense vectors")
    return np.asarray(encoding.dense, dtype=np.float32)


def _check_branches(dense: Encoder | None, sparse: Encoder | None, bm25: Encoder | None) -> None:
    """Raise a ``ConfigError`` for an encoder that cannot serve its branch."""
    if dense is not None and not dense.spec.produces_dense:
        raise ConfigError(
            f"encoder {dense.spec.name!r} produces no dense vectors, so it cannot be the dense "
            "encoder; pick an encoder with a dense_dim, or use it as sparse_encoder"
        )
    if sparse is not None and not sparse.spec.produces_sparse:
        raise ConfigError(
            f"encoder {sparse.spec.name!r} produces no sparse vectors (sparse_kind 'none'), so "
            "it cannot be the sparse encoder; use it as dense_encoder"
        )
    if bm25 is not None and (bm25.spec.sparse_kind != "bm25" or not bm25.spec.sparse_idf):
        raise ConfigError(
            f"encoder {bm25.spec.name!r} cannot serve the lexical (BM25) branch: it takes term "
            "frequencies (sparse_kind 'bm25', sparse_idf True) and the engine applies IDF, but "
            f"it declares sparse_kind {bm25.spec.sparse_kind!r}, sparse_idf "
            f"{bm25.spec.sparse_idf}; use it as sparse_encoder instead"
        )


def _multivector_encoder(dense: Encoder | None, sparse: Encoder | None) -> Encoder:
    """The encoder that gives the late-interaction vectors (the dense one, else the sparse one)."""
    source = dense if dense is not None else sparse
    if source is None or source.spec.multivector_dim is None:
        name = repr(source.spec.name) if source is not None else "(none)"
        raise ConfigError(
            "multivector = true stores late-interaction (ColBERT) vectors from the dense "
            f"encoder (else the sparse one), but encoder {name} produces none (its spec has no "
            "multivector_dim); use an encoder that does (bge-m3) or set multivector = false"
        )
    return source


def _multivectors(encoder: Encoder, encoding: Encoding, n: int) -> list[np.ndarray]:
    """The encoder's multivectors of ``n`` texts as float32 ``(n_tokens, dim)`` arrays, checked."""
    spec = encoder.spec
    if encoding.multivector is None or len(encoding.multivector) != n:
        got = "none" if encoding.multivector is None else len(encoding.multivector)
        raise ConfigError(
            f"encoder {spec.name!r} returned {got} multivectors for {n} texts although "
            "multivector = true; it must fill Encoding.multivector (one array per text) when "
            "EncoderOptions.multivector is set"
        )
    out = []
    for rows in encoding.multivector:
        array = np.asarray(rows, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != spec.multivector_dim:
            raise ConfigError(
                f"encoder {spec.name!r} returned a multivector of shape {array.shape}; expected "
                f"(n_tokens >= 1, {spec.multivector_dim})"
            )
        out.append(array)
    return out


def without_parameters(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    """``fingerprint`` without each branch's ``parameters`` (BM25's k1, b and average length):
    what stays is the identity of the encoders, which a rewrite of the vectors in place
    (``renormalize``) does not change."""
    return {
        branch: {k: v for k, v in fp.items() if k != "parameters"} if isinstance(fp, Mapping) else fp
        for branch, fp in fingerprint.items()
    }
