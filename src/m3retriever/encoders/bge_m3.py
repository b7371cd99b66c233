"""BGE-M3 encoder: dense and learned-sparse vectors from one forward pass (FlagEmbedding).

The model is loaded lazily on first use and shared by every :class:`BGEM3Encoder` of the process
that names the same model directory, device and precision. The tokenizer is loaded on its own
(without the weights) so :meth:`BGEM3Encoder.token_offsets` can chunk text before any encoding.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from m3retriever._deps import require
from m3retriever._shared import SharedModels
from m3retriever.encoders.base import Encoder, EncoderOptions, EncoderSpec, check_texts, resolve_device
from m3retriever.errors import ConfigError, InputError, ModelNotFoundError
from m3retriever.types import Encoding, SparseVector

__all__ = ["BGEM3Encoder", "DEFAULT_MODEL", "resolve_model_dir"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "BAAI/bge-m3"
DEFAULT_DENSE_DIM = 1024
SPARSE_PREFIX = "\u2581"  # sentencepiece word-boundary marker

# Files never needed to run a model through torch; FlagEmbedding skips the first three, and the
# ONNX export in BAAI/bge-m3 alone is over 2 GB.
HUB_IGNORE_PATTERNS = ("flax_model.msgpack", "rust_model.ot", "tf_model.h5", "onnx/*", "openvino/*")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
M3_HEAD_FILES = ("colbert_linear.pt", "sparse_linear.pt")

# (model directory, device, fp16) -> (BGEM3FlagModel, lock serialising calls into it)
_models: SharedModels[tuple[Any, threading.Lock]] = SharedModels()
# model directory -> (tokenizer for token_offsets / decode_terms, lock serialising calls into it).
# Deliberately not the model's own tokenizer: FlagEmbedding switches that one's truncation and
# padding state on every call, which a concurrent call from another thread would trip over.
_tokenizers: SharedModels[tuple[Any, threading.Lock]] = SharedModels()


def _hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return True


def _looks_like_local_path(model: str) -> bool:
    """True for strings that cannot be a hub id (``name`` or ``org/name``)."""
    if os.path.isabs(model) or model.startswith((".", "~")) or "\\" in model:
        return True
    parts = model.split("/")
    return len(parts) > 2 or any(not part for part in parts)


def _not_found_message(model: str, reason: str, *, default_model: str, how_to: str) -> str:
    return (
        f"Model {model!r} could not be found: {reason}. "
        f"Point m3retriever at a local copy instead: {how_to}. "
        f"To get one, run `hf download {default_model} --local-dir /path/to/{default_model.split('/')[-1]}` "
        "(older huggingface_hub: `huggingface-cli download ...`) on a machine with internet access "
        "and copy the folder over."
    )


def resolve_model_dir(
    model: str,
    *,
    default_model: str,
    how_to: str,
    required_files: Sequence[str] = (),
) -> str:
    """Return the absolute local directory of ``model``, downloading it only when online.

    Local paths are used as they are. Hub ids are looked up in the Hugging Face cache first and
    downloaded only when the hub may be contacted, so an offline machine fails at once instead of
    hanging on the network.

    Args:
        model: A local directory or a hub id (``org/name``).
        default_model: The hub id to name in the download hint.
        how_to: How to point m3retriever at a local copy (for the error message).
        required_files: Files that must exist in the directory besides ``config.json`` and weights.

    Returns:
        The absolute path of the model directory.

    Raises:
        ModelNotFoundError: The model is not available locally and cannot be downloaded, or the
            directory lacks a file the model needs.
    """

    def fail(reason: str, cause: BaseException | None = None) -> ModelNotFoundError:
        err = ModelNotFoundError(
            _not_found_message(model, reason, default_model=default_model, how_to=how_to)
        )
        err.__cause__ = cause
        return err

    expanded = os.path.expanduser(model)
    if os.path.exists(expanded):
        if not os.path.isdir(expanded):
            raise fail(f"{expanded} is a file, not a model directory")
        directory = os.path.abspath(expanded)
    elif _looks_like_local_path(model):
        raise fail(f"no such directory {os.path.abspath(expanded)}")
    else:
        hub = require(
            "huggingface_hub", package="huggingface_hub", extra="torch", purpose="Loading models"
        )
        try:
            if _hub_offline():
                directory = hub.snapshot_download(repo_id=model, local_files_only=True)
            else:
                directory = hub.snapshot_download(
                    repo_id=model, ignore_patterns=list(HUB_IGNORE_PATTERNS)
                )
        except Exception as exc:  # hub errors are OSError, ValueError or HTTP errors
            where = (
                "it is not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE=1)"
                if _hub_offline()
                else f"downloading it from the Hugging Face hub failed ({type(exc).__name__}: {exc})"
            )
            raise fail(where, exc) from exc
    base = Path(directory)
    if not (base / "config.json").is_file():
        raise fail(f"{directory} has no config.json")
    if not any((base / name).is_file() for name in WEIGHT_FILES):
        raise fail(f"{directory} has no weights (expected one of {', '.join(WEIGHT_FILES)})")
    missing = [name for name in required_files if not (base / name).is_file()]
    if missing:
        raise fail(f"{directory} lacks {', '.join(missing)}")
    return str(base)


def _cached_config(model: str) -> dict[str, Any] | None:
    """Read ``config.json`` of a local directory or a cached hub model, without any download."""
    expanded = os.path.expanduser(model)
    path: str | None = None
    if os.path.isdir(expanded):
        path = os.path.join(expanded, "config.json")
    elif not _looks_like_local_path(model):
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(repo_id=model, filename="config.json")
            path = found if isinstance(found, str) else None
        except Exception:  # noqa: BLE001 - the cache lookup is best effort
            path = None
    if path is None or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class BGEM3Encoder(Encoder):
    """BGE-M3 dense (CLS pooled, L2-normalised) plus learned-sparse encoder.

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
        config = _cached_config(self._model_name)
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
                    _not_found_message(
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
                    _not_found_message(
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
            return Encoding(dense=np.zeros((0, self._dim), dtype=np.float32), sparse=[])
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
                return_colbert_vecs=False,
            )
        dense = np.ascontiguousarray(np.asarray(out["dense_vecs"], dtype=np.float32))
        if dense.ndim != 2 or dense.shape[0] != len(items):
            raise RuntimeError(f"unexpected dense output shape {dense.shape} for {len(items)} texts")
        sparse = [SparseVector.from_mapping(weights) for weights in out["lexical_weights"]]
        return Encoding(dense=dense, sparse=sparse)

    def encode_query(self, texts: Sequence[str]) -> Encoding:
        """Encode search queries (FlagEmbedding's query path; BGE-M3 needs no instruction, a
        configured ``query_instruction`` is prepended).

        Args:
            texts: Query strings.

        Returns:
            ``(n, dim)`` float32 L2-normalised dense vectors and one sparse vector per query.

        Raises:
            ModelNotFoundError: The model cannot be found.
            InputError: ``texts`` is a single string or holds a non-string.
        """
        return self._encode(texts, query=True)

    def encode_documents(self, texts: Sequence[str]) -> Encoding:
        """Encode passages for indexing (FlagEmbedding's corpus path).

        Args:
            texts: Passage strings.

        Returns:
            ``(n, dim)`` float32 L2-normalised dense vectors and one sparse vector per passage.

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
