"""BGE-M3 encoder: dense, learned-sparse and (on request) late-interaction vectors from one
forward pass (FlagEmbedding).

The model is loaded lazily on first use and shared by every :class:`BGEM3Encoder` of the process
that names the same model directory, device and precision. The tokenizer is loaded on its own
(without the weights) so :meth:`BGEM3Encoder.token_offsets` can chunk text before any encoding.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Sequence

import numpy as np

from m3retriever._deps import require
from m3retriever.encoders.base import Encoder, EncoderOptions, EncoderSpec
from m3retriever.errors import ConfigError, InputError, ModelNotFoundError
from m3retriever.runtime.cache import SharedModels
from m3retriever.runtime.device import resolve_device
from m3retriever.runtime.hub import cached_config, not_found_message, resolve_model_dir
from m3retriever.runtime.texts import check_texts
from m3retriever.types import Encoding, SparseVector

__all__ = ["BGEM3Encoder", "DEFAULT_MODEL"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "BAAI/bge-m3"
DEFAULT_DENSE_DIM = 1024
SPARSE_PREFIX = "\u2581"  # sentencepiece word-boundary marker

M3_HEAD_FILES = ("colbert_linear.pt", "sparse_linear.pt")

# (model directory, device, fp16) -> (BGEM3FlagModel, lock serialising calls into it)
_models: SharedModels[tuple[Any, threading.Lock]] = SharedModels()
# model directory -> (tokenizer for token_offsets / decode_terms, lock serialising calls into it).
# Deliberately not the model's own tokenizer: FlagEmbedding switches that one's truncation and
# padding state on every call, which a concurrent call from another thread would trip over.
_tokenizers: SharedModels[tuple[Any, threading.Lock]] = SharedModels()


class BGEM3Encoder(Encoder):
    """BGE-M3 dense (CLS pooled, L2-normalised) plus learned-sparse encoder; with
    ``options.multivector`` also FlagEmbedding's ``colbert_vecs`` (``colbert_linear`` over the
    token states, L2-normalised, without the CLS position or padding) in
    ``Encoding.multivector``.

    Args:
        options: Encoder options. ``options.model`` defaults to ``"BAAI/bge-m3"``; a local
            directory with the BGE-M3 layout (``config.json``, weights, tokenizer,
            ``colbert_linear.pt`` and ``sparse_linear.pt``) works too. ``options.dims`` must be
            ``None``: BGE-M3 is not a Matryoshka model.

    Raises:
        ConfigError: ``options.dims`` is set, or ``batch_size`` / ``max_length`` are not positive.
    """

    def __init__(self, options: EncoderOptions) -> None:
        if options.dims is not None:
            raise ConfigError(
                f"bge-m3 does not support Matryoshka truncation (dims={options.dims}); "
                "leave EncoderOptions.dims unset or pick an encoder that supports it"
            )
        if options.batch_size < 1 or options.max_length < 1:
            raise ConfigError(
                f"batch_size and max_length must be positive, got batch_size={options.batch_size}, "
                f"max_length={options.max_length}"
            )
        self._options = options
        self._model_name = options.model or DEFAULT_MODEL
        config = cached_config(self._model_name)
        hidden = config.get("hidden_size") if config else None
        self._dim = int(hidden) if isinstance(hidden, int) else DEFAULT_DENSE_DIM
        self._spec = EncoderSpec(
            name="bge-m3",
            model=self._model_name,
            dense_dim=self._dim,
            distance="cosine",
            sparse_kind="learned",
            sparse_idf=False,
            pooling="cls",
            max_length=options.max_length,
            query_instruction=options.query_instruction or "",
            multivector_dim=self._dim,  # colbert_linear maps hidden_size to hidden_size
        )
        self._device = resolve_device(options.device)
        self._fp16 = self._device.startswith("cuda")
        self._model_dir: str | None = None
        self._effective_max_length: int | None = None

    # -- loading ----------------------------------------------------------------------------

    @property
    def spec(self) -> EncoderSpec:
        """What this encoder produces; answered without loading the model."""
        return self._spec

    def _how_to(self) -> str:
        return (
            'pass EncoderOptions(model="/path/to/bge-m3"), or set the config\'s dense_model and '
            "sparse_model to that path (environment: M3R_DENSE_MODEL=/path/to/bge-m3 "
            "M3R_SPARSE_MODEL=/path/to/bge-m3)"
        )

    def _resolve(self) -> str:
        if self._model_dir is None:
            self._model_dir = resolve_model_dir(
                self._model_name,
                default_model=DEFAULT_MODEL,
                how_to=self._how_to(),
                required_files=M3_HEAD_FILES,
            )
        return self._model_dir

    def _load(self) -> tuple[Any, threading.Lock]:
        """Return the shared ``BGEM3FlagModel`` and its call lock, loading it on first use."""
        model_dir = self._resolve()
        key = (model_dir, self._device, self._fp16)

        def load() -> tuple[Any, threading.Lock]:
            flag = require(
                "FlagEmbedding",
                package="FlagEmbedding",
                extra="bge-m3",
                purpose="The bge-m3 encoder",
            )
            logger.info(
                "loading BGE-M3 from %s on %s (fp16=%s)", model_dir, self._device, self._fp16
            )
            try:
                model = flag.BGEM3FlagModel(
                    model_dir,
                    use_fp16=self._fp16,
                    devices=self._device,
                    normalize_embeddings=True,
                    pooling_method="cls",
                )
            except OSError as exc:
                raise ModelNotFoundError(
                    not_found_message(
                        self._model_name,
                        f"loading {model_dir} failed ({exc})",
                        default_model=DEFAULT_MODEL,
                        how_to=self._how_to(),
                    )
                ) from exc
            return (model, threading.Lock())

        return _models.get(key, load)

    @property
    def model(self) -> Any:
        """The shared ``FlagEmbedding.BGEM3FlagModel`` (loads it if needed)."""
        return self._load()[0]

    def _tokenizer(self) -> tuple[Any, threading.Lock]:
        """The model's tokenizer (loaded without the weights) and its call lock."""
        model_dir = self._resolve()

        def load() -> tuple[Any, threading.Lock]:
            transformers = require(
                "transformers",
                package="transformers",
                extra="bge-m3",
                purpose="The bge-m3 tokenizer",
            )
            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
            except OSError as exc:
                raise ModelNotFoundError(
                    not_found_message(
                        self._model_name,
                        f"loading the tokenizer from {model_dir} failed ({exc})",
                        default_model=DEFAULT_MODEL,
                        how_to=self._how_to(),
                    )
                ) from exc
            return (tokenizer, threading.Lock())

        return _tokenizers.get(model_dir, load)

    def _max_length(self, model: Any) -> int:
        """``options.max_length`` capped at what the position embeddings allow (warns once)."""
        if self._effective_max_length is not None:
            return self._effective_max_length
        self._effective_max_length = self._compute_max_length(model)
        return self._effective_max_length

    def _compute_max_length(self, model: Any) -> int:
        try:
            config = model.model.model.config  # M3Embedder -> M3 inference wrapper -> XLMRobertaModel
        except AttributeError:  # pragma: no cover - a FlagEmbedding layout we do not know
            return self._options.max_length
        limit = int(getattr(config, "max_position_embeddings", 0) or 0)
        if config.model_type in {"xlm-roberta", "roberta"}:
            limit -= int(config.pad_token_id or 0) + 1  # positions start after the padding id
        if limit > 0 and self._options.max_length > limit:
            logger.warning(
                "max_length=%d exceeds what %s supports; using %d",
                self._options.max_length,
                self._model_name,
                limit,
            )
            return limit
        return self._options.max_length

    # -- encoding ---------------------------------------------------------------------------

    def _encode(self, texts: Sequence[str], *, query: bool) -> Encoding:
        items = check_texts(texts)
        if not items:
            empty: list[np.ndarray] | None = [] if self._options.multivector else None
            return Encoding(dense=np.zeros((0, self._dim), dtype=np.float32), sparse=[], multivector=empty)
        if query and self._spec.query_instruction:
            items = [self._spec.query_instruction + t for t in items]
        model, call_lock = self._load()
        method = model.encode_queries if query else model.encode_corpus
        # One call at a time per model: FlagEmbedding's batch-size fallback turns any
        # RuntimeError (e.g. a fast tokenizer "Already borrowed" under threads) into retries.
        with call_lock:
            out = method(
                items,
                batch_size=self._options.batch_size,
                max_length=self._max_length(model),
                return_dense=True,
                return_sparse=True,
                return_colbert_vecs=self._options.multivector,
            )
        dense = np.ascontiguousarray(np.asarray(out["dense_vecs"], dtype=np.float32))
        if dense.ndim != 2 or dense.shape[0] != len(items):
            raise RuntimeError(f"unexpected dense output shape {dense.shape} for {len(items)} texts")
        sparse = [SparseVector.from_mapping(weights) for weights in out["lexical_weights"]]
        multivector = None
        if self._options.multivector:
            multivector = [np.ascontiguousarray(np.asarray(v, dtype=np.float32)) for v in out["colbert_vecs"]]
        return Encoding(dense=dense, sparse=sparse, multivector=multivector)

    def encode_query(self, texts: Sequence[str]) -> Encoding:
        """Encode search queries (FlagEmbedding's query path; BGE-M3 needs no instruction, a
        configured ``query_instruction`` is prepended).

        Args:
            texts: Query strings.

        Returns:
            ``(n, dim)`` float32 L2-normalised dense vectors and one sparse vector per query
            (and with ``options.multivector`` one ``(n_tokens, dim)`` array per query).

        Raises:
            ModelNotFoundError: The model cannot be found.
            InputError: ``texts`` is a single string or holds a non-string.
        """
        return self._encode(texts, query=True)

    def encode_document(self, texts: Sequence[str]) -> Encoding:
        """Encode passages for indexing (FlagEmbedding's corpus path).

        Args:
            texts: Passage strings.

        Returns:
            ``(n, dim)`` float32 L2-normalised dense vectors and one sparse vector per passage
            (and with ``options.multivector`` one ``(n_tokens, dim)`` array per passage).

        Raises:
            ModelNotFoundError: The model cannot be found.
            InputError: ``texts`` is a single string or holds a non-string.
        """
        return self._encode(texts, query=False)

    # -- tokens -----------------------------------------------------------------------------

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens in ``text`` (no special tokens, no truncation).

        Loads only the tokenizer, never the weights.
        """
        if not isinstance(text, str):
            raise InputError(f"text is {type(text).__name__}, expected str")
        tokenizer, call_lock = self._tokenizer()
        with call_lock:
            encoded = tokenizer(
                text,
                return_offsets_mapping=True,
                add_special_tokens=False,
                truncation=False,
                verbose=False,
            )
        return [(int(start), int(end)) for start, end in encoded["offset_mapping"]]

    def decode_terms(self, ids: Sequence[int]) -> list[str]:
        """The tokens of sparse indices, without the sentencepiece ``'▁'`` marker."""
        tokenizer, call_lock = self._tokenizer()
        with call_lock:
            tokens = tokenizer.convert_ids_to_tokens([int(i) for i in ids])
        return [
            (token if token is not None else str(i)).replace(SPARSE_PREFIX, "")
            for i, token in zip(ids, tokens)
        ]
