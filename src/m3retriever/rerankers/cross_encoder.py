"""Cross-encoder reranker loaded through sentence-transformers' ``CrossEncoder``.

Pairs are tokenized here (the query within its budget, the passage cut to the rest; see
:func:`~m3retriever.rerankers.base.query_budget`) and scored by the loaded model. Scores are the model's raw logits (no sigmoid); the pipeline applies ``sigmoid`` itself where it
needs a calibrated relevance. The model is loaded lazily on first use and shared by every
:class:`CrossEncoderReranker` of the process that names the same model directory, device and
precision.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Sequence

import numpy as np

from m3retriever._deps import require
from m3retriever.errors import ConfigError, InputError, ModelNotFoundError
from m3retriever.rerankers.base import (
    Reranker,
    RerankerOptions,
    RerankerSpec,
    TokenSpans,
    cut_to_tokens,
    query_budget,
)
from m3retriever.runtime.cache import SharedModels
from m3retriever.runtime.device import resolve_device
from m3retriever.runtime.hub import resolve_model_dir
from m3retriever.runtime.texts import check_texts

__all__ = ["CrossEncoderReranker", "DEFAULT_MODEL"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "BAAI/bge-reranker-v2-m3"

# (model directory, device, fp16) -> (CrossEncoder, lock serialising calls into it)
_models: SharedModels[tuple[Any, threading.Lock]] = SharedModels()


class CrossEncoderReranker(Reranker):
    """Reranks passages with a sequence-classification cross-encoder (one logit per pair).

    Args:
        options: Reranker options. ``options.model`` defaults to ``"BAAI/bge-reranker-v2-m3"``;
            a local directory with a sequence-classification model and its tokenizer works too.
            A pair is at most ``options.max_length`` tokens: the query keeps up to
            :func:`~m3retriever.rerankers.base.query_budget` tokens (three quarters), the
            passage gets the rest and is the side that is cut.

    Raises:
        ConfigError: ``batch_size`` or ``max_length`` is not positive.
    """

    def __init__(self, options: RerankerOptions) -> None:
        if options.batch_size < 1 or options.max_length < 1:
            raise ConfigError(
                f"batch_size and max_length must be positive, got batch_size={options.batch_size}, "
                f"max_length={options.max_length}"
            )
        self._options = options
        self._model_name = options.model or DEFAULT_MODEL
        self._spec = RerankerSpec(
            name="cross-encoder",
            model=self._model_name,
            max_length=options.max_length,
            max_query_length=query_budget(options.max_length),
        )
        self._device = resolve_device(options.device)
        self._fp16 = self._device.startswith("cuda")
        self._model_dir: str | None = None

    @property
    def spec(self) -> RerankerSpec:
        """Name, model and limits of this reranker."""
        return self._spec

    def _how_to(self) -> str:
        return (
            'pass RerankerOptions(model="/path/to/bge-reranker-v2-m3") '
            "or set the config's reranker_model to that path "
            "(environment: M3R_RERANKER_MODEL=/path/to/bge-reranker-v2-m3)"
        )

    def _load(self) -> tuple[Any, threading.Lock]:
        """Return the shared ``CrossEncoder`` and its call lock, loading it on first use."""
        if self._model_dir is None:
            self._model_dir = resolve_model_dir(
                self._model_name, default_model=DEFAULT_MODEL, how_to=self._how_to()
            )
        model_dir = self._model_dir
        key = (model_dir, self._device, self._fp16)

        def load() -> tuple[Any, threading.Lock]:
            torch = require(
                "torch", package="torch", extra="torch", purpose="The cross-encoder reranker"
            )
            st = require(
                "sentence_transformers",
                package="sentence-transformers",
                extra="torch",
                purpose="The cross-encoder reranker",
            )
            logger.info(
                "loading cross-encoder from %s on %s (fp16=%s)",
                model_dir,
                self._device,
                self._fp16,
            )
            model_kwargs = {"dtype": torch.float16} if self._fp16 else None
            try:
                model = st.CrossEncoder(
                    model_dir,
                    device=self._device,
                    local_files_only=True,
                    activation_fn=torch.nn.Identity(),
                    model_kwargs=model_kwargs,
                )
            except OSError as exc:
                raise ModelNotFoundError(
                    f"Model {self._model_name!r} could not be loaded from {model_dir}: {exc}. "
                    f"Point m3retriever at a working local copy: {self._how_to()}."
                ) from exc
            model.eval()
            return (model, threading.Lock())

        return _models.get(key, load)

    @property
    def model(self) -> Any:
        """The shared ``sentence_transformers.CrossEncoder`` (loads it if needed)."""
        return self._load()[0]

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """Return one raw logit per passage, in the order of ``passages``.

        Pairs are scored longest first, so each batch holds pairs of similar length and needs
        little padding; the scores are put back in the caller's order.

        Args:
            query: The search query.
            passages: Candidate passages.

        Returns:
            A float32 array of shape ``(len(passages),)``.

        Raises:
            ModelNotFoundError: The model cannot be found.
            InputError: ``query`` is not a string, ``passages`` is a single string or holds a
                non-string.
        """
        if not isinstance(query, str):
            raise InputError(f"query is {type(query).__name__}, expected str")
        if isinstance(passages, str):
            raise InputError("pass a list of passages, not a single string")
        items = list(passages)
        for i, passage in enumerate(items):
            if not isinstance(passage, str):
                raise InputError(f"passage {i} is {type(passage).__name__}, expected str")
        if not items:
            return np.zeros((0,), dtype=np.float32)

        model, call_lock = self._load()
        order = sorted(range(len(items)), key=lambda i: len(items[i]), reverse=True)
        with call_lock:
            query = self._cut_query(model.tokenizer, query)
            sorted_scores = self._logits(model, query, [items[i] for i in order])
        sorted_scores = np.asarray(sorted_scores, dtype=np.float32).reshape(-1)
        if sorted_scores.shape[0] != len(items):
            raise RuntimeError(
                f"the cross-encoder returned {sorted_scores.shape[0]} scores for {len(items)} pairs; "
                "is it a single-label (num_labels=1) model?"
            )
        scores = np.empty(len(items), dtype=np.float32)
        scores[np.asarray(order)] = sorted_scores
        return scores

    def token_spans(self, texts: Sequence[str]) -> list[TokenSpans]:
        """Character spans of each text's tokens (uncut; special tokens left out)."""
        items = check_texts(texts, "texts")
        model, call_lock = self._load()
        with call_lock:
            encoded = model.tokenizer(items, add_special_tokens=False, return_offsets_mapping=True)
        return [[(int(a), int(b)) for a, b in offsets if b > a] for offsets in encoded["offset_mapping"]]

    def _cut_query(self, tokenizer: Any, query: str) -> str:
        """``query`` cut to its budget of tokens inside a pair (see :func:`~m3retriever.rerankers.base.query_budget`)."""
        budget = self._spec.max_query_length or self._options.max_length
        encoded = tokenizer(
            query,
            add_special_tokens=False,
            return_offsets_mapping=True,
            truncation=True,
            max_length=budget + 1,
        )
        return cut_to_tokens(query, encoded["offset_mapping"], budget)

    def _logits(self, model: Any, query: str, passages: list[str]) -> np.ndarray:
        """The model's logits for ``(query, passage)`` pairs of at most ``max_length`` tokens.

        The pairs are tokenized here, not by ``CrossEncoder.predict``, so that only the passage
        is cut (``only_second``); the query is already within its budget.
        """
        import torch

        tokenizer, net = model.tokenizer, model.model
        out = []
        for start in range(0, len(passages), self._options.batch_size):
            chunk = passages[start : start + self._options.batch_size]
            features = self._tokenize(tokenizer, query, chunk, "only_second")
            with torch.inference_mode():
                logits = net(**{k: v.to(net.device) for k, v in features.items()}).logits
            out.append(logits.float().cpu().numpy().reshape(len(chunk), -1))
        logits_all = np.concatenate(out)
        return logits_all[:, 0] if logits_all.shape[1] == 1 else logits_all.reshape(-1)

    def _tokenize(self, tokenizer: Any, query: str, passages: list[str], truncation: str) -> Any:
        """Tokenized pairs, padded to the longest, cut to ``max_length`` with ``truncation``."""
        try:
            return tokenizer(
                [query] * len(passages),
                passages,
                truncation=truncation,
                max_length=self._options.max_length,
                padding=True,
                return_tensors="pt",
            )
        except Exception:  # tokenizers raises a bare Exception when only_second cannot fit
            if truncation == "longest_first":
                raise
            # The cut query re-tokenized a little longer than its budget: cut both sides.
            logger.debug("query too long for only_second truncation; using longest_first")
            return self._tokenize(tokenizer, query, passages, "longest_first")
