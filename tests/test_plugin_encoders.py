"""Encoders written by third parties: the Encoder interface (``encode_query`` /
``encode_document``, the deprecated ``encode_documents``) and the names a plugin imports."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pytest

import m3retriever
from m3retriever import Encoder, EncoderSpec, Encoding


def _dense(texts: Sequence[str]) -> Encoding:
    return Encoding(dense=np.ones((len(texts), 2), dtype=np.float32) * len(texts))


class _New(Encoder):
    spec = EncoderSpec(name="new", model="m", dense_dim=2)  # type: ignore[assignment]

    def encode_query(self, texts: Sequence[str]) -> Encoding:
        return _dense(texts)

    def encode_document(self, texts: Sequence[str]) -> Encoding:
        return _dense(texts)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


def test_encode_documents_is_a_deprecated_alias():
    enc = _New()
    with pytest.warns(DeprecationWarning, match=r"encode_documents\(\) is deprecated; call encode_document\(\)"):
        out = enc.encode_documents(["a", "b"])
    assert out.dense is not None and out.dense.shape == (2, 2)


def test_an_encoder_defining_only_the_old_name_still_works():
    with pytest.warns(DeprecationWarning, match="defines encode_documents\\(\\), which is deprecated"):

        class Old(Encoder):
            spec = EncoderSpec(name="old", model="m", dense_dim=2)  # type: ignore[assignment]

            def encode_query(self, texts: Sequence[str]) -> Encoding:
                return _dense(texts)

            def encode_documents(self, texts: Sequence[str]) -> Encoding:
                """Old-style passages."""
                return _dense(list(texts) * 2)

            def token_offsets(self, text: str) -> list[tuple[int, int]]:
                return [(0, len(text))]

    enc = Old()  # not abstract: encode_document calls encode_documents
    assert enc.encode_document(["a"]).dense.shape == (2, 2)  # type: ignore[union-attr]
    assert Old.encode_document.__doc__ == "Old-style passages."

    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Child(Old):  # inherits the bridged method: no second warning
            pass

    assert Child().encode_document(["a"]).dense.shape == (2, 2)  # type: ignore[union-attr]


def test_an_encoder_without_encode_document_is_abstract():
    class Missing(Encoder):
        spec = EncoderSpec(name="missing", model="m", dense_dim=2)  # type: ignore[assignment]

        def encode_query(self, texts: Sequence[str]) -> Encoding:
            return _dense(texts)

        def token_offsets(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    with pytest.raises(TypeError, match="encode_document"):
        Missing()  # type: ignore[abstract]


def test_a_plugin_author_imports_everything_from_the_package():
    for name in (
        "Encoder", "EncoderOptions", "EncoderSpec", "Encoding", "SparseVector", "Reranker",
        "RerankerOptions", "RerankerSpec", "EncoderFactory", "RerankerFactory", "AdapterFactory",
        "hookimpl", "Filter", "Document", "Hit", "SearchResult", "PluginError",
    ):
        assert name in m3retriever.__all__ and hasattr(m3retriever, name), name
    assert sorted(set(m3retriever.__all__)) == sorted(m3retriever.__all__)  # no duplicates
    assert all(hasattr(m3retriever, name) for name in m3retriever.__all__)
