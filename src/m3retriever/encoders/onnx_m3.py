"""BGE-M3 from an ONNX export (``m3retriever model export-onnx``): dense, lexical weights and, when
asked, ColBERT vectors from one ``onnxruntime`` run, without torch.

The graph computes what FlagEmbedding computes (the normalised CLS state, ``relu(sparse_linear)``
per token, normalised ``colbert_linear`` token vectors); the per-id maximum of the lexical
weights, the dropped special tokens and the removed padding are done here, as FlagEmbedding does
them after its forward pass.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from m3retriever.encoders.base import Encoder, EncoderOptions, EncoderSpec
from m3retriever.errors import ConfigError, InputError, ModelNotFoundError
from m3retriever.runtime.exported import (
    EXPORT_COMMAND,
    INT8_SUFFIX,
    MANIFEST_NAME,
    read_manifest,
    require_directory,
    source_model_id,
    verify_export,
)
from m3retriever.runtime.onnx import get_onnx_session, pad_encodings, run_outputs
from m3retriever.runtime.texts import check_texts
from m3retriever.runtime.tokens import TokenizerPair
from m3retriever.runtime.wheels import local_model_dir
from m3retriever.types import Encoding, SparseVector

if TYPE_CHECKING:  # pragma: no cover
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = ["OnnxBGEM3Encoder", "INT8_SUFFIX"]

logger = logging.getLogger(__name__)

SPARSE_PREFIX = "\u2581"  # sentencepiece word-boundary marker
KIND = "bge-m3"


class OnnxBGEM3Encoder(Encoder):
    """BGE-M3 dense (CLS, L2-normalised) and learned-sparse vectors, plus ColBERT token vectors
    when asked, from an ONNX export.

    Fingerprint: an fp32 export produces the ``bge-m3`` encoder's vectors (within 1e-5), so its
    spec is that encoder's (name ``"bge-m3"``, the source model recorded at export): a collection
    ingested by either is searched by the other. An int8 export's vectors differ (cosine ~0.99),
    so its model carries :data:`INT8_SUFFIX` and such collections are kept apart.

    Dynamically quantized (int8) graphs run one text per call: their activation scales span the
    batch, so batching would make a text's vectors depend on its neighbours.

    Args:
        options: Encoder options; ``options.model`` is the export directory (required).
            ``options.dims`` must be ``None``. ``options.max_length`` is capped at the model's
            positions.
        multivector: Also return ColBERT vectors (``Encoding.multivector``); ``None`` reads
            ``options.multivector``. The spec
            declares ``multivector_dim`` either way, as the ``bge-m3`` encoder's does.

    Raises:
        ModelNotFoundError: No directory given, or it is not a BGE-M3 export.
        ConfigError: ``options.dims`` is set, or ``batch_size`` / ``max_length`` are invalid.
    """

    name = "bge-m3-onnx"

    def __init__(self, options: EncoderOptions, *, multivector: bool | None = None) -> None:
        if options.dims is not None:
            raise ConfigError(
                f"bge-m3-onnx does not support Matryoshka truncation (dims={options.dims}); "
                "leave dims unset"
            )
        if options.batch_size < 1 or options.max_length < 8:
            raise ConfigError(
                "bge-m3-onnx needs batch_size >= 1 and max_length >= 8, got "
                f"batch_size={options.batch_size}, max_length={options.max_length}"
            )
        if not options.model:
            raise ModelNotFoundError(
                "The bge-m3-onnx encoder needs the directory of a BGE-M3 ONNX export: write one "
                f"with `m3retriever model export-onnx BAAI/bge-m3 DIR --int8` ({EXPORT_COMMAND}) and "
                "set dense_model = DIR (environment: M3R_DENSE_MODEL=DIR)"
            )
        require_directory(
            options.model,
            "The bge-m3-onnx encoder needs a BGE-M3 ONNX export",
            source="BAAI/bge-m3",
            setting="dense_model",
        )
        required = ("model.onnx", "tokenizer.json", MANIFEST_NAME)
        how = f"The bge-m3-onnx encoder (a directory written by `{EXPORT_COMMAND}`)"
        self._dir = local_model_dir(options.model, required, how)
        manifest = read_manifest(self._dir) or {}
        if manifest.get("kind") != KIND:
            raise ModelNotFoundError(
                f"{self._dir} holds a {manifest.get('kind')!r} export, not a BGE-M3 one; "
                f"export BAAI/bge-m3 with `{EXPORT_COMMAND}`"
            )
        self._manifest = manifest
        self._options = options
        self._max_length = _capped_length(options.max_length, manifest.get("max_positions"))
        if multivector is None:
            multivector = bool(options.multivector)
        self._multivector = multivector
        self._spec = self._make_spec(options, manifest)
        specials = manifest.get("special_token_ids") or {}
        self._unused = np.array(sorted({int(v) for v in specials.values()}), dtype=np.int64)
        self._pad_id = int(specials.get("pad_token", 1))
        self._lock = threading.Lock()
        self._verified = False
        self._tokenizer_pair = TokenizerPair(self._dir / "tokenizer.json", self._max_length)

    def _make_spec(self, options: EncoderOptions, manifest: dict[str, Any]) -> EncoderSpec:
        return EncoderSpec(
            name="bge-m3",
            model=source_model_id(self._dir) or str(self._dir),
            dense_dim=int(manifest["hidden_size"]),
            distance="cosine",
            sparse_kind="learned",
            sparse_idf=False,
            pooling="cls",
            max_length=self._max_length,
            query_instruction=options.query_instruction or "",
            multivector_dim=int(manifest["colbert_dim"]),  # declared always, returned when asked
        )

    @property
    def spec(self) -> EncoderSpec:
        """What this encoder produces; answered without loading the model."""
        return self._spec

    @property
    def directory(self) -> Path:
        """The export directory."""
        return self._dir

    # -- lazy state ---------------------------------------------------------------------------

    def _verify(self) -> None:
        """Check every file's sha256 against the manifest, once (before the first load)."""
        if not self._verified:
            with self._lock:
                if not self._verified:
                    verify_export(self._dir, KIND, "The bge-m3-onnx encoder")
                    self._verified = True

    def _tokenizer(self) -> "Tokenizer":
        """The truncating tokenizer (for encoding; the offsets' one loads when the chunker
        first asks)."""
        self._verify()
        return self._tokenizer_pair.truncating()

    def _session(self) -> "onnxruntime.InferenceSession":
        self._verify()
        return get_onnx_session(self._dir / "model.onnx", self._options.device)

    # -- Encoder API --------------------------------------------------------------------------

    def encode_query(self, texts: Sequence[str]) -> Encoding:
        """Encode search queries (a configured ``query_instruction`` is prepended).

        Args:
            texts: Query strings.

        Returns:
            ``(n, dim)`` float32 L2-normalised dense vectors, one sparse vector per query, and
            the ColBERT vectors when this encoder was asked for them.
        """
        items = check_texts(texts, "queries")
        prefix = self._spec.query_instruction
        return self._encode([prefix + t for t in items] if prefix else items)

    def encode_document(self, texts: Sequence[str]) -> Encoding:
        """Encode passages for indexing.

        Args:
            texts: Passage strings.

        Returns:
            ``(n, dim)`` float32 L2-normalised dense vectors, one sparse vector per passage, and
            the ColBERT vectors when this encoder was asked for them.
        """
        return self._encode(check_texts(texts, "documents"))

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens in ``text`` (no special tokens, no truncation)."""
        if not isinstance(text, str):
            raise InputError(f"text is {type(text).__name__}, expected str")
        self._verify()
        return self._tokenizer_pair.offsets(text)

    def decode_terms(self, ids: Sequence[int]) -> list[str]:
        """The tokens of sparse indices, without the sentencepiece ``'▁'`` marker."""
        tokenizer = self._tokenizer()  # ids map to the same tokens
        return [(tokenizer.id_to_token(int(i)) or str(i)).replace(SPARSE_PREFIX, "") for i in ids]

    # -- internals ----------------------------------------------------------------------------

    def _encode(self, texts: list[str]) -> Encoding:
        dim = self._spec.dense_dim or 0
        if not texts:
            empty: list[np.ndarray] | None = [] if self._multivector else None
            return Encoding(dense=np.zeros((0, dim), dtype=np.float32), sparse=[], multivector=empty)
        tokenizer = self._tokenizer()
        session = self._session()
        outputs = ["dense_vecs", "sparse_weights"] + (["colbert_vecs"] if self._multivector else [])
        encodings = tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids), reverse=True)
        batch_size = 1 if self._manifest.get("quantization") else self._options.batch_size
        dense = np.empty((len(texts), dim), dtype=np.float32)
        sparse: list[SparseVector | None] = [None] * len(texts)
        multi: list[np.ndarray | None] = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            feeds = pad_encodings([encodings[i] for i in rows], self._pad_id)
            feeds = {"input_ids": feeds["input_ids"], "attention_mask": feeds["attention_mask"]}
            result = run_outputs(session, outputs, feeds)
            dense[rows] = result[0]
            lengths = feeds["attention_mask"].sum(axis=1)
            for j, row in enumerate(rows):
                n = int(lengths[j])
                sparse[row] = self._lexical(feeds["input_ids"][j, :n], result[1][j, :n])
                if self._multivector:
                    multi[row] = np.ascontiguousarray(result[2][j, : n - 1], dtype=np.float32)
        return Encoding(
            dense=dense,
            sparse=[s for s in sparse if s is not None],
            multivector=[m for m in multi if m is not None] if self._multivector else None,
        )

    def _lexical(self, ids: np.ndarray, weights: np.ndarray) -> SparseVector:
        """FlagEmbedding's lexical weights: special tokens dropped, the maximum weight per id."""
        keep = (weights > 0) & ~np.isin(ids, self._unused)
        ids, weights = ids[keep], weights[keep].astype(np.float32, copy=False)
        if ids.size == 0:
            return SparseVector((), ())
        order = np.lexsort((weights, ids))  # by id, then weight: the last of each id is its max
        ids, weights = ids[order], weights[order]
        last = np.append(ids[1:] != ids[:-1], True)
        return SparseVector(
            tuple(int(i) for i in ids[last]), tuple(float(w) for w in weights[last])
        )


def _capped_length(max_length: int, positions: Any) -> int:
    """``max_length``, capped (with a warning) at the positions the model has."""
    if isinstance(positions, int) and 0 < positions < max_length:
        logger.warning("max_length=%d exceeds what the model supports; using %d", max_length, positions)
        return positions
    return max_length
