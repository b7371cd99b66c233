"""A BERT masked-language model run in numpy, for SPLADE query encoding without torch.

SPLADE-tiny (the small profile's sparse model) is a bare ``BertForMaskedLM`` checkpoint
(``config.json``, ``model.safetensors``, ``tokenizer.json``). Loading it through
sentence-transformers imports torch, transformers and sentence-transformers, seconds of a
command-line search spent before the first query is encoded; a query is a few tokens through
two small layers, which numpy computes in milliseconds. :class:`NumpyMaskedLM` is the same
forward pass in float32 (embeddings, post-norm encoder layers with exact erf GELU, the MLM
head tied to the word embeddings), and :meth:`NumpyMaskedLM.splade` the same pooling as
sentence-transformers' ``SpladePooling("max", "relu")``: ``max_t log(1 + relu(logits))``.

Only checkpoints this module can run exactly are taken (:meth:`NumpyMaskedLM.load` returns
``None`` for the others, which stay on sentence-transformers).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from m3retriever.types import SparseVector

__all__ = ["NumpyMaskedLM"]

logger = logging.getLogger(__name__)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float64 (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7: about
    one float32 step, the precision the model runs in)."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf: np.ndarray = np.sign(x) * (1.0 - poly * np.exp(-x * x))
    return erf


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU, ``x * Phi(x)`` with erf (BERT's ``hidden_act="gelu"``), in float32."""
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1.0 + _erf(x64 / math.sqrt(2.0)))).astype(np.float32)


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    normed: np.ndarray = ((x - mean) / np.sqrt(var + eps) * gamma + beta).astype(np.float32)
    return normed


def _runnable(config: Mapping[str, Any]) -> bool:
    """Whether ``config`` describes a model :class:`NumpyMaskedLM` computes exactly."""
    return (
        config.get("model_type") == "bert"
        and list(config.get("architectures") or []) == ["BertForMaskedLM"]
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and config.get("tie_word_embeddings", True) is True
        and not config.get("is_decoder", False)
        and config.get("hidden_size", 0) % max(1, config.get("num_attention_heads", 0)) == 0
    )


class NumpyMaskedLM:
    """The forward pass of a ``BertForMaskedLM`` in numpy (one text at a time, no padding).

    Args:
        weights: The checkpoint's tensors by name (``bert.*`` and ``cls.predictions.*``).
        config: Its ``config.json``.
        tokenizer: A ``tokenizers.Tokenizer`` (from ``tokenizer.json``).
    """

    def __init__(self, weights: Mapping[str, np.ndarray], config: Mapping[str, Any], tokenizer: Any) -> None:
        self._w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        # The dense layers' weights transposed once, contiguous (a product with ``w.T`` runs an
        # order of magnitude slower on a few tokens).
        self._t = {
            k[: -len(".weight")]: np.ascontiguousarray(v.T)
            for k, v in self._w.items()
            if k.endswith(".weight") and v.ndim == 2 and "embeddings" not in k
        }
        self._layers = int(config["num_hidden_layers"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_positions = int(config.get("max_position_embeddings", 512))
        self.tokenizer = tokenizer
        self._tokenizer_lock = threading.Lock()  # truncation is the tokenizer's state

    @classmethod
    def load(cls, folder: str | Path) -> NumpyMaskedLM | None:
        """The model of ``folder`` when it is a bare BERT MLM checkpoint this class runs
        exactly (``None`` otherwise: another architecture, a sentence-transformers folder,
        weights not in ``model.safetensors``, no ``tokenizer.json``)."""
        path = Path(folder)
        files = [path / n for n in ("config.json", "model.safetensors", "tokenizer.json")]
        if not all(f.is_file() for f in files) or (path / "modules.json").exists():
            return None
        config = json.loads(files[0].read_text(encoding="utf-8"))
        if not _runnable(config):
            return None
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        weights = load_file(str(files[1]))
        needed = (
            "bert.embeddings.word_embeddings.weight",
            "cls.predictions.bias",
            "cls.predictions.transform.dense.weight",
        )
        if not all(k in weights for k in needed):
            return None
        logger.info("Loading %s as a numpy masked-language model", path)
        return cls(weights, config, Tokenizer.from_file(str(files[2])))

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return np.asarray(x @ self._t[name] + self._w[f"{name}.bias"], dtype=np.float32)

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        return _layer_norm(x, self._w[f"{name}.gamma"], self._w[f"{name}.beta"], self._eps)

    def _attention(self, x: np.ndarray, prefix: str) -> np.ndarray:
        n, hidden = x.shape
        d = hidden // self._heads
        q, k, v = (
            self._linear(x, f"{prefix}.self.{p}").reshape(n, self._heads, d).transpose(1, 0, 2)
            for p in ("query", "key", "value")
        )
        scores = (q @ k.transpose(0, 2, 1)) / np.float32(math.sqrt(d))
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(n, hidden)
        return self._norm(self._linear(context, f"{prefix}.output.dense") + x, f"{prefix}.output.LayerNorm")

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """MLM logits, ``(len(ids), vocab)``, of one tokenized text (token types 0)."""
        w = self._w
        emb = "bert.embeddings"
        x = (
            w[f"{emb}.word_embeddings.weight"][np.asarray(ids)]
            + w[f"{emb}.position_embeddings.weight"][: len(ids)]
            + w[f"{emb}.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, f"{emb}.LayerNorm")
        for i in range(self._layers):
            layer = f"bert.encoder.layer.{i}"
            x = self._attention(x, f"{layer}.attention")
            inner = _gelu(self._linear(x, f"{layer}.intermediate.dense"))
            x = self._norm(self._linear(inner, f"{layer}.output.dense") + x, f"{layer}.output.LayerNorm")
        head = "cls.predictions"
        x = self._norm(_gelu(self._linear(x, f"{head}.transform.dense")), f"{head}.transform.LayerNorm")
        return np.asarray(x @ w[f"{emb}.word_embeddings.weight"].T + w[f"{head}.bias"], dtype=np.float32)

    def splade(self, texts: Sequence[str], max_length: int) -> list[SparseVector]:
        """SPLADE vectors (max over tokens of ``log(1 + relu(logits))``, positive weights
        only) of ``texts``, each cut to ``max_length`` tokens with its special tokens."""
        with self._tokenizer_lock:
            self.tokenizer.enable_truncation(min(max_length, self.max_positions))
            self.tokenizer.no_padding()
            encoded = [self.tokenizer.encode(text).ids for text in texts]
        out = []
        for ids in encoded:
            pooled = np.log1p(np.maximum(self.logits(ids), 0)).max(axis=0)
            nz = np.flatnonzero(pooled > 0)
            out.append(SparseVector(tuple(int(i) for i in nz), tuple(float(pooled[i]) for i in nz)))
        return out
