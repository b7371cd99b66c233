"""The torch modules that become ONNX graphs: BGE-M3 with its three heads, and a cross-encoder.

:func:`detect_kind` tells the two checkpoints apart from their files; :func:`load_graph` loads
one as a module whose ``forward`` takes int64 ``input_ids`` and ``attention_mask`` (and
``token_type_ids`` for models that use them) and returns the graph's outputs, computed exactly
as FlagEmbedding (BGE-M3) and transformers (cross-encoder) compute them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3retriever._deps import require
from m3retriever.errors import ModelNotFoundError

__all__ = [
    "KIND_BGE_M3",
    "KIND_RERANKER",
    "M3_HEAD_FILES",
    "M3_OUTPUTS",
    "RERANKER_OUTPUTS",
    "LoadedGraph",
    "detect_kind",
    "load_graph",
    "max_positions",
]

KIND_BGE_M3 = "bge-m3"
KIND_RERANKER = "reranker"
M3_HEAD_FILES = ("colbert_linear.pt", "sparse_linear.pt")

M3_OUTPUTS: dict[str, str] = {
    "dense_vecs": "(batch, hidden) float32: the CLS state, L2-normalised",
    "sparse_weights": "(batch, seq) float32: relu(sparse_linear(h)) per token, before the per-id max",
    "colbert_vecs": (
        "(batch, seq - 1, colbert_dim) float32: colbert_linear(h[:, 1:]) * mask[:, 1:], "
        "L2-normalised (padding rows are zero)"
    ),
}
RERANKER_OUTPUTS: dict[str, str] = {"logits": "(batch, num_labels) float32: raw relevance logits"}


@dataclass
class LoadedGraph:
    """A checkpoint loaded as an exportable module.

    Attributes:
        kind: :data:`KIND_BGE_M3` or :data:`KIND_RERANKER`.
        module: The ``torch.nn.Module`` to export (eval mode).
        inputs: Its input names, in ``forward``'s order.
        outputs: Its output names with what each holds.
        config: The transformer's ``config.json`` as a dict.
        quantize_exclude: Name prefixes of graph nodes int8 quantization must leave in float.
        colbert_dim: Size of the ColBERT vectors (BGE-M3 only).
    """

    kind: str
    module: Any
    inputs: list[str]
    outputs: dict[str, str]
    config: dict[str, Any]
    quantize_exclude: tuple[str, ...] = field(default=())
    colbert_dim: int | None = None


def _read_config(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"{directory / 'config.json'} is unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelNotFoundError(f"{directory / 'config.json'} is not a JSON object")
    return data


def detect_kind(directory: Path) -> str:
    """``"bge-m3"`` for the BGE-M3 layout, ``"reranker"`` for a sequence classifier.

    Raises:
        ModelNotFoundError: The checkpoint is neither.
    """
    if all((directory / name).is_file() for name in M3_HEAD_FILES):
        return KIND_BGE_M3
    architectures = _read_config(directory).get("architectures") or []
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return KIND_RERANKER
    raise ModelNotFoundError(
        f"{directory} is neither a BGE-M3 checkpoint (a transformer with "
        f"{' and '.join(M3_HEAD_FILES)} beside it) nor a cross-encoder (config.json "
        f"architectures ending in 'ForSequenceClassification', found {architectures}); "
        "export-onnx converts only these two kinds"
    )


def max_positions(config: dict[str, Any]) -> int | None:
    """Longest input the position embeddings allow (RoBERTa-style models lose pad id + 1)."""
    limit = config.get("max_position_embeddings")
    if not isinstance(limit, int) or limit <= 0:
        return None
    if config.get("model_type") in {"xlm-roberta", "roberta"}:
        limit -= int(config.get("pad_token_id") or 0) + 1
    return limit


def _load_linear(torch: Any, path: Path, in_features: int) -> Any:
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    weight = state.get("weight")
    if weight is None or weight.ndim != 2 or int(weight.shape[1]) != in_features:
        raise ModelNotFoundError(
            f"{path} is not a Linear({in_features}, n) state dict (the BGE-M3 head layout)"
        )
    linear = torch.nn.Linear(in_features, int(weight.shape[0]))
    linear.load_state_dict(state)
    return linear


def _m3_module(torch: Any, transformers: Any, directory: Path) -> Any:
    functional = torch.nn.functional
    base = transformers.AutoModel.from_pretrained(str(directory), attn_implementation="eager")
    hidden = int(base.config.hidden_size)

    class BGEM3Graph(torch.nn.Module):  # type: ignore[misc, name-defined]
        """Dense, per-token sparse and ColBERT outputs of one forward pass (FlagEmbedding's)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = base
            self.colbert_linear = _load_linear(torch, directory / "colbert_linear.pt", hidden)
            self.sparse_linear = _load_linear(torch, directory / "sparse_linear.pt", hidden)

        def forward(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any, Any]:
            states = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            dense = functional.normalize(states[:, 0], dim=-1)
            sparse = torch.relu(self.sparse_linear(states)).squeeze(-1)
            colbert = self.colbert_linear(states[:, 1:])
            colbert = colbert * attention_mask[:, 1:, None].to(colbert.dtype)
            return dense, sparse, functional.normalize(colbert, dim=-1)

    return BGEM3Graph().eval()


def _reranker_module(torch: Any, transformers: Any, directory: Path, inputs: list[str]) -> Any:
    classifier = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(directory), attn_implementation="eager"
    )

    class CrossEncoderGraph(torch.nn.Module):  # type: ignore[misc, name-defined]
        """The classifier's logits for tokenized (query, passage) pairs."""

        def __init__(self) -> None:
            super().__init__()
            self.model = classifier

        def forward(self, *tensors: Any) -> Any:
            return self.model(**dict(zip(inputs, tensors))).logits

    return CrossEncoderGraph().eval()


def load_graph(directory: Path) -> LoadedGraph:
    """Load the checkpoint in ``directory`` as an exportable module.

    Raises:
        ModelNotFoundError: The checkpoint is neither kind, or its files are malformed.
        MissingDependencyError: torch or transformers is not installed.
    """
    kind = detect_kind(directory)
    torch = require("torch", package="torch", extra="torch", purpose="export-onnx")
    transformers = require(
        "transformers", package="transformers", extra="torch", purpose="export-onnx"
    )
    config = _read_config(directory)
    if kind == KIND_BGE_M3:
        module = _m3_module(torch, transformers, directory)
        return LoadedGraph(
            kind=kind,
            module=module,
            inputs=["input_ids", "attention_mask"],
            outputs=dict(M3_OUTPUTS),
            config=config,
            quantize_exclude=("/colbert_linear/", "/sparse_linear/"),
            colbert_dim=int(module.colbert_linear.out_features),
        )
    inputs = ["input_ids", "attention_mask"]
    if int(config.get("type_vocab_size") or 1) > 1:
        inputs.append("token_type_ids")
    return LoadedGraph(
        kind=kind,
        module=_reranker_module(torch, transformers, directory, inputs),
        inputs=inputs,
        outputs=dict(RERANKER_OUTPUTS),
        config=config,
    )
