"""Built-in encoders, rerankers and file readers: a plugin module like a third party's, with the same hooks.

:mod:`m3retriever.plugins` registers it by import under the name ``"builtin"`` (not through
an entry point), so the built-ins are there even in a source checkout that is not installed,
and ``M3R_LOAD_PLUGINS`` cannot switch them off. Importing this module is cheap: model code
is imported only when a factory is called."""

from __future__ import annotations

from typing import Callable

from m3retriever.encoders.base import Encoder, EncoderOptions
from m3retriever.hookspecs import hookimpl
from m3retriever.readers.base import Reader
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


def _text_reader() -> Reader:
    from m3retriever.readers.text import read_text

    return read_text


def _markdown_reader() -> Reader:
    from m3retriever.readers.text import read_markdown

    return read_markdown


def _html_reader() -> Reader:
    from m3retriever.readers.html import _lxml_html, read_html

    _lxml_html()  # a missing library is reported once, naming the extra
    return read_html


def _pdf_reader() -> Reader:
    from m3retriever._deps import require
    from m3retriever.readers.pdf import read_pdf

    require("pypdf", package="pypdf", extra="pdf", purpose="Reading PDF files")
    return read_pdf


def _docx_reader() -> Reader:
    from m3retriever._deps import require
    from m3retriever.readers.docx import read_docx

    require("docx", package="python-docx", extra="docx", purpose="Reading Word (.docx) files")
    return read_docx


def _notebook_reader() -> Reader:
    from m3retriever.readers.notebook import read_notebook

    return read_notebook


def _rst_reader() -> Reader:
    from m3retriever._deps import require
    from m3retriever.readers.rst import read_rst

    require("docutils", package="docutils", extra="rst", purpose="Reading reStructuredText files")
    return read_rst


@hookimpl
def register_readers(register: Callable[[str, Callable[[], Reader]], None]) -> None:
    """Register the built-in file readers, by suffix."""
    register(".txt", _text_reader)
    register(".md", _markdown_reader)
    register(".markdown", _markdown_reader)
    register(".html", _html_reader)
    register(".htm", _html_reader)
    register(".pdf", _pdf_reader)
    register(".docx", _docx_reader)
    register(".ipynb", _notebook_reader)
    register(".rst", _rst_reader)
