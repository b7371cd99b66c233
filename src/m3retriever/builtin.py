"""Built-in encoders and rerankers: a plugin module like a third party's, with the same hooks.

:mod:`m3retriever.plugins` registers it by import under the name ``"builtin"`` (not through
an entry point), so the built-ins are there even in a source checkout that is not installed,
and ``M3R_LOAD_PLUGINS`` cannot switch them off. Importing this module is cheap: model code
is imported only when a factory is called."""

from __future__ import annotations

from typing import Callable

from m3retriever.encoders.base import Encoder, EncoderOptions
from m3retriever.hookspecs import hookimpl
from m3retriever.rerankers.base import Reranker, RerankerOptions


def _bge_m3(options: EncoderOptions) -> Encoder:
    from m3retriever.encoders.bge_m3 import BGEM3Encoder

    return BGEM3Encoder(options)


def _bge_m3_onnx(options: EncoderOptions) -> Encoder:
    from m3retriever.encoders.onnx_m3 import OnnxBGEM3Encoder

    return OnnxBGEM3Encoder(options)


def _onnx_dense(options: EncoderOptions) -> Encoder:
    from m3retriever.encoders.onnx_dense import OnnxDenseEncoder

    return OnnxDenseEncoder(options)


def _st_dense(options: EncoderOptions) -> Encoder:
    from m3retriever.encoders.st_dense import SentenceTransformerEncoder

    return SentenceTransformerEncoder(options)


def _splade(options: EncoderOptions) -> Encoder:
    from m3retriever.encoders.splade import SpladeEncoder

    return SpladeEncoder(options)


def _bm25(options: EncoderOptions) -> Encoder:
    from m3retriever.encoders.bm25 import BM25Encoder

    return BM25Encoder(options)


def _cross_encoder(options: RerankerOptions) -> Reranker:
    from m3retriever.rerankers.cross_encoder import CrossEncoderReranker

    return CrossEncoderReranker(options)


def _onnx_cross_encoder(options: RerankerOptions) -> Reranker:
    from m3retriever.rerankers.onnx_cross import OnnxCrossEncoderReranker

    return OnnxCrossEncoderReranker(options)


@hookimpl
def register_encoders(register: Callable[[str, Callable[[EncoderOptions], Encoder]], None]) -> None:
    """Register the built-in encoders."""
    register("bge-m3", _bge_m3)
    register("bge-m3-onnx", _bge_m3_onnx)
    register("onnx-dense", _onnx_dense)
    register("sentence-transformers", _st_dense)
    register("splade", _splade)
    register("bm25", _bm25)


@hookimpl
def register_rerankers(
    register: Callable[[str, Callable[[RerankerOptions], Reranker]], None],
) -> None:
    """Register the built-in rerankers."""
    register("cross-encoder", _cross_encoder)
    register("onnx-cross-encoder", _onnx_cross_encoder)
