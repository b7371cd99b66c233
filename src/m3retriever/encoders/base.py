"""The encoder interface every dense or sparse encoder implements."""

from __future__ import annotations

import abc
import warnings
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from m3retriever.runtime.device import resolve_device
from m3retriever.runtime.texts import check_texts
from m3retriever.types import Distance, Encoding, LengthStats, SparseKind

__all__ = ["EncoderOptions", "EncoderSpec", "Encoder", "LengthNormalizedEncoder", "resolve_device", "check_texts"]

Pooling = Literal["cls", "mean", "max", "none"]


@dataclass(frozen=True)
class EncoderOptions:
    """Options every encoder factory accepts.

    Attributes:
        model: Hub id or local path; ``None`` uses the encoder's default model.
        batch_size: Texts per forward pass.
        max_length: Maximum tokens per text (longer texts are truncated by the model).
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dims: Matryoshka truncation of the dense vector, for models that support it.
        query_instruction: Text prepended to every query by dense encoders that take one
            (``None``: the encoder's default for its model; ``""``: none). Stored vectors do
            not depend on it, so it can change without re-ingesting.
        multivector: Also return the late-interaction (ColBERT) token vectors
            (``Encoding.multivector``), for encoders whose spec declares ``multivector_dim``;
            others ignore it.
    """

    model: str | None = None
    batch_size: int = 32
    max_length: int = 512
    device: str = "auto"
    dims: int | None = None
    query_instruction: str | None = None
    multivector: bool = False


@dataclass(frozen=True)
class EncoderSpec:
    """What an encoder produces and needs; recorded in the collection as its fingerprint.

    Attributes:
        name: Registered encoder name (``"bge-m3"``, ``"bge-small-onnx"``...).
        model: The model id or path actually used.
        dense_dim: Dense dimension, or ``None`` for sparse-only encoders.
        distance: Distance the dense vectors are meant for.
        sparse_kind: ``"learned"`` (model weights), ``"bm25"`` (term frequencies) or ``"none"``.
        sparse_idf: Whether the engine should apply its IDF modifier to the sparse vector.
        query_instruction: Text the encoder prepends to queries (for instruction-tuned models).
        pooling: How token states become the dense vector.
        max_length: Maximum tokens per text.
        matryoshka_dims: Allowed truncation sizes (empty: truncation not supported).
        parameters: ``(name, value)`` pairs of settings that change the stored document
            vectors (BM25's ``k1``, ``b`` and where its average length comes from); part of
            the fingerprint when not empty.
        multivector_dim: Size of each late-interaction (ColBERT) token vector, or ``None`` when
            the encoder produces none.
    """

    name: str
    model: str
    dense_dim: int | None
    distance: Distance = "cosine"
    sparse_kind: SparseKind = "none"
    sparse_idf: bool = False
    query_instruction: str = ""
    pooling: Pooling = "none"
    max_length: int = 512
    matryoshka_dims: tuple[int, ...] = ()
    parameters: tuple[tuple[str, Any], ...] = ()
    multivector_dim: int | None = None

    @property
    def produces_dense(self) -> bool:
        """True when the encoder outputs dense vectors."""
        return self.dense_dim is not None

    @property
    def produces_sparse(self) -> bool:
        """True when the encoder outputs sparse vectors."""
        return self.sparse_kind != "none"

    def fingerprint(self) -> dict[str, object]:
        """The fields that must match for a collection to be reusable.

        ``parameters`` appear only when an encoder declares some, so the fingerprints of
        encoders without any stay what they were.
        """
        fp: dict[str, object] = {
            "name": self.name,
            "model": self.model,
            "dense_dim": self.dense_dim,
            "distance": self.distance if self.produces_dense else None,
            "sparse_kind": self.sparse_kind,
        }
        if self.parameters:
            fp["parameters"] = dict(self.parameters)
        return fp


class Encoder(abc.ABC):
    """Turns texts into dense and/or sparse vectors.

    Implementations load their model lazily (on first use) and are safe to share between
    threads for reading. Query and document encoding are separate because many models use
    an instruction or prefix on one side only.
    """

    @property
    @abc.abstractmethod
    def spec(self) -> EncoderSpec:
        """What this encoder produces (dimension, distance, sparse kind...)."""

    @abc.abstractmethod
    def encode_query(self, texts: Sequence[str]) -> Encoding:
        """Encode search queries (with the query instruction, if any).

        Args:
            texts: Query strings.

        Returns:
            An :class:`~m3retriever.types.Encoding` with one row per query.
        """

    @abc.abstractmethod
    def encode_document(self, texts: Sequence[str]) -> Encoding:
        """Encode passages for indexing.

        Args:
            texts: Passage strings.

        Returns:
            An :class:`~m3retriever.types.Encoding` with one row per passage.
        """

    def encode_documents(self, texts: Sequence[str]) -> Encoding:
        """Deprecated name of :meth:`encode_document` (removed in the next release)."""
        warnings.warn(
            "Encoder.encode_documents() is deprecated; call encode_document()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.encode_document(texts)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Keep an encoder written against the old name working: a subclass that defines only
        ``encode_documents`` gets an ``encode_document`` that calls it (with a warning)."""
        super().__init_subclass__(**kwargs)
        old = cls.__dict__.get("encode_documents")
        if old is None or _defines(cls, "encode_document"):
            return
        warnings.warn(
            f"{cls.__qualname__} defines encode_documents(), which is deprecated: rename it "
            "encode_document() (the old name is removed in the next release)",
            DeprecationWarning,
            stacklevel=2,
        )

        def encode_document(self: Encoder, texts: Sequence[str]) -> Encoding:
            return old(self, texts)  # type: ignore[no-any-return]

        encode_document.__doc__ = old.__doc__
        cls.encode_document = encode_document  # type: ignore[method-assign]

    @abc.abstractmethod
    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of ``text`` (without special tokens).

        Used by the chunker so chunks are bounded in the encoder's own tokens.
        """

    def decode_terms(self, ids: Sequence[int]) -> list[str]:
        """Human-readable terms for sparse indices (for ``matched_terms``).

        The default returns the ids as strings; tokenizer-based encoders override it.
        """
        return [str(i) for i in ids]


class LengthNormalizedEncoder(Encoder):
    """An encoder whose document vectors depend on the collection's average document length.

    BM25's length normalisation compares each document with the average length of the
    collection it is stored in. The retriever keeps running totals of the lengths with the
    collection (:class:`~m3retriever.types.LengthStats`) and hands them to
    :meth:`encode_document_normalized` at ingest time.
    """

    @abc.abstractmethod
    def document_lengths(self, texts: Sequence[str]) -> list[int]:
        """The length of each text in the unit the average is taken in (BM25: analyzed terms).

        Args:
            texts: Passage strings.

        Returns:
            One length per text.
        """

    @abc.abstractmethod
    def encode_document_normalized(
        self, texts: Sequence[str], collection: LengthStats, *, include_texts: bool = True
    ) -> tuple[Encoding, LengthStats]:
        """Encode passages, normalised by the collection's average length.

        Args:
            texts: Passage strings.
            collection: Length totals of the collection.
            include_texts: Add these texts' lengths to ``collection`` before averaging (new
                documents); ``False`` when ``collection`` already counts them (re-encoding).

        Returns:
            The encoding and the length totals of ``texts`` alone.
        """

    def encode_document(self, texts: Sequence[str]) -> Encoding:
        """Encode passages as a collection of their own (normalised by their average length)."""
        return self.encode_document_normalized(texts, LengthStats())[0]


def _defines(cls: type, name: str) -> bool:
    """True when ``cls`` or a base below :class:`Encoder` defines ``name`` concretely."""
    for klass in cls.__mro__:
        if klass is Encoder:
            return False
        member = klass.__dict__.get(name)
        if member is not None and not getattr(member, "__isabstractmethod__", False):
            return True
    return False
