"""Export checkpoints to ONNX directories the ONNX encoders and rerankers load.

:func:`export_onnx` turns a BGE-M3 checkpoint into one graph emitting dense vectors, per-token
sparse weights and ColBERT vectors, and a cross-encoder (bge-reranker) into a graph emitting
logits, optionally int8-quantized, written with the tokenizer and a manifest. It needs torch,
transformers and onnx; importing this package loads none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from m3retriever.export.onnx_export import export_onnx

__all__ = ["export_onnx"]


def __getattr__(name: str) -> Any:
    if name == "export_onnx":
        from m3retriever.export.onnx_export import export_onnx

        return export_onnx
    raise AttributeError(name)
