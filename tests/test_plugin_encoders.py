"""Encoders written by third parties: the Encoder interface (``encode_query`` /
``encode_document``, the deprecated ``encode_documents``), the names a plugin imports, and
docs/plugins.md's example encoder run through Config and Retriever in each branch."""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

import m3retriever
import m3retriever.plugin
from m3retriever import Config, ConfigError, Encoder, EncoderSpec, Encoding, Retriever


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


def test_a_plugin_author_imports_everything_from_the_public_modules():
    for name in (
        "Encoder", "EncoderOptions", "EncoderSpec", "Encoding", "SparseVector", "Reranker",
        "RerankerOptions", "RerankerSpec", "EncoderFactory", "RerankerFactory", "AdapterFactory",
        "hookimpl",
    ):
        assert name in m3retriever.plugin.__all__ and hasattr(m3retriever.plugin, name), name
    for name in ("Filter", "Document", "Hit", "SearchResult", "PluginError"):
        assert name in m3retriever.__all__ and hasattr(m3retriever, name), name
    # tests/test_public_api.py pins both lists


# -- docs/plugins.md's HashingEncoder, installed as a real distribution --------------------------

DOCS_PLUGINS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
HASHING_DOCS = [
    ("hashing-1", "The quick brown fox jumps over the lazy dog."),
    ("hashing-2", "Qdrant stores vectors and payloads for fast filtered search."),
    ("hashing-3", "Reciprocal rank fusion merges rankings from several retrievers."),
]


def _docs_example() -> str:
    """The ``m3retriever_hashing/__init__.py`` code block of docs/plugins.md."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS_PLUGINS.read_text(encoding="utf-8"), re.S)
    found = [b for b in blocks if "class HashingEncoder" in b]
    assert len(found) == 1, "docs/plugins.md should hold one HashingEncoder example"
    return found[0]


@pytest.fixture
def hashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """docs/plugins.md's example as an installed distribution with an entry point."""
    from m3retriever.components import clear_cache
    from m3retriever.plugins import reset_plugins

    site = tmp_path / "site"
    (site / "m3retriever_hashing").mkdir(parents=True)
    (site / "m3retriever_hashing" / "__init__.py").write_text(_docs_example(), encoding="utf-8")
    info = site / "m3retriever_hashing-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: m3retriever-hashing\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[m3retriever]\nhashing = m3retriever_hashing\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("M3R_LOAD_PLUGINS", "hashing")
    importlib.invalidate_caches()
    reset_plugins()
    clear_cache()
    yield
    reset_plugins()
    clear_cache()
    sys.modules.pop("m3retriever_hashing", None)


def _cheap(tmp_path: Path, **settings: object) -> Config:
    """The small profile without its models (its BM25 stays unless ``settings`` say otherwise)."""
    base = {"profile": "small", "dense_encoder": "none", "sparse_encoder": "none",
            "reranker": "none", "location": str(tmp_path / "store")}
    return Config(**{**base, **settings})  # type: ignore[arg-type]


def test_docs_hashing_encoder_serves_the_sparse_branch(hashing, tmp_path: Path) -> None:
    with Retriever(_cheap(tmp_path, sparse_encoder="hashing", bm25=False)) as r:
        assert r.encoders.sparse is not None and r.encoders.sparse.spec.name == "hashing"
        assert r.encoders.bm25 is None
        r.add_texts([t for _, t in HASHING_DOCS], ids=[i for i, _ in HASHING_DOCS])
        hits = r.search("qdrant vectors", top_k=2).hits
        assert hits[0].doc_id == "hashing-2"
        assert hits[0].scores.sparse is not None and hits[0].scores.bm25 is None
        assert r.info()["encoders"]["sparse"]["name"] == "hashing"


def test_docs_hashing_encoder_serves_the_lexical_branch(hashing, tmp_path: Path) -> None:
    with Retriever(_cheap(tmp_path, lexical_encoder="hashing")) as r:  # naming it turns bm25 on
        assert r.encoders.bm25 is not None and r.encoders.bm25.spec.name == "hashing"
        r.add_texts([t for _, t in HASHING_DOCS], ids=[i for i, _ in HASHING_DOCS])
        hits = r.search("rank fusion", top_k=2).hits
        assert hits[0].doc_id == "hashing-3" and hits[0].scores.bm25 is not None
        assert r.info()["encoders"]["bm25"]["name"] == "hashing"


def test_docs_config_beside_bge_m3(hashing, make_retriever) -> None:
    """The exact configuration docs/plugins.md shows, with the (tiny) BGE-M3 dense encoder."""
    r = make_retriever(bm25=False, sparse_encoder="hashing")
    assert (r.encoders.dense.spec.name, r.encoders.sparse.spec.name) == ("bge-m3", "hashing")
    r.add_texts([t for _, t in HASHING_DOCS], ids=[i for i, _ in HASHING_DOCS])
    assert {h.doc_id for h in r.search("qdrant vectors", top_k=3, rerank=False)} == {i for i, _ in HASHING_DOCS}


def test_an_encoder_in_the_wrong_branch_is_a_clear_error(hashing, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'hashing' produces no dense vectors, so it cannot be the dense encoder"):
        Retriever(_cheap(tmp_path, dense_encoder="hashing", bm25=False))
    with pytest.raises(ConfigError, match="'splade' cannot serve the lexical \\(BM25\\) branch"):
        Retriever(_cheap(tmp_path, lexical_encoder="splade"))
