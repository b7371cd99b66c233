"""The ONNX exports against the models they came from: the bge-m3-onnx encoder against
FlagEmbedding (dense, lexical weights, ColBERT vectors), the exported reranker against
transformers, int8's ranking agreement on a fixture set, and a retriever on Qdrant Edge."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m3retriever.encoders.base import EncoderOptions
from m3retriever.encoders.bge_m3 import BGEM3Encoder
from m3retriever.encoders.onnx_m3 import OnnxBGEM3Encoder
from m3retriever.errors import FingerprintMismatchError, ModelNotFoundError
from m3retriever.rerankers.base import RerankerOptions
from m3retriever.rerankers.cross_encoder import CrossEncoderReranker
from m3retriever.rerankers.onnx_cross import OnnxCrossEncoderReranker

pytest.importorskip("onnx")
sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
import bench_onnx_int8  # noqa: E402

DOCS = [
    "The cat sat on the mat and looked at the garden.",
    "The stock market fell after the central bank raised interest rates.",
    "Café in München: naïve prices, €24.50!",
    "",
    "Paris is the capital of France. " * 20,  # truncated at MAX_LENGTH
    "x",
]
QUERIES = ["where is the cat?", "interest rates", "capital of France"]
MAX_LENGTH = 64
ATOL = 1e-5

# The lowest int8 agreement with fp32 accepted on the fixture set of bench_onnx_int8 (8 queries x
# 40 sentences; measured on these tiny random models, see docs/onnx.md).
MIN_KENDALL = {"dense": 0.8, "sparse": 0.75, "colbert": 0.8, "rerank": 0.8}


def _encoder(path: Path, **kwargs) -> OnnxBGEM3Encoder:  # type: ignore[no-untyped-def]
    options = EncoderOptions(model=str(path), device="cpu", max_length=MAX_LENGTH, batch_size=2)
    return OnnxBGEM3Encoder(options, **kwargs)


@pytest.fixture(scope="module")
def reference(tiny_bge_m3_path: Path):  # type: ignore[no-untyped-def]
    from FlagEmbedding import BGEM3FlagModel

    return BGEM3FlagModel(str(tiny_bge_m3_path), use_fp16=False, devices="cpu")


def _flag(reference, texts: list[str], query: bool) -> dict:  # type: ignore[no-untyped-def]
    method = reference.encode_queries if query else reference.encode_corpus
    return method(texts, batch_size=4, max_length=MAX_LENGTH, return_dense=True, return_sparse=True, return_colbert_vecs=True)


def _assert_same(ours, theirs, atol: float = ATOL) -> None:  # type: ignore[no-untyped-def]
    assert np.abs(ours.dense - theirs["dense_vecs"]).max() < atol
    for mine, their in zip(ours.sparse, theirs["lexical_weights"], strict=True):
        expected = {int(k): float(v) for k, v in their.items() if float(v) > 0}
        got = mine.as_dict()
        assert got.keys() == expected.keys()
        assert all(abs(got[k] - expected[k]) < atol for k in got)
    for mine, their in zip(ours.multivector, theirs["colbert_vecs"], strict=True):
        assert mine.shape == their.shape and mine.dtype == np.float32
        assert np.abs(mine - their).max() < atol


@pytest.mark.parametrize("side", ["queries", "documents"])
def test_fp32_export_equals_flagembedding(onnx_exports, reference, side):
    texts = QUERIES if side == "queries" else DOCS
    encoder = _encoder(onnx_exports["m3"], multivector=True)
    ours = encoder.encode_query(texts) if side == "queries" else encoder.encode_document(texts)
    _assert_same(ours, _flag(reference, texts, side == "queries"))


@pytest.fixture(scope="module")
def fp32_encoder(onnx_exports) -> OnnxBGEM3Encoder:  # type: ignore[no-untyped-def]
    return _encoder(onnx_exports["m3"], multivector=True)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=120), min_size=1, max_size=4))
def test_fp32_export_equals_flagembedding_on_any_text(fp32_encoder, reference, texts):
    _assert_same(fp32_encoder.encode_document(texts), _flag(reference, texts, False))


def test_multivectors_only_when_asked(onnx_exports):
    plain = _encoder(onnx_exports["m3"])
    assert plain.spec.multivector_dim == 32  # what it can produce, as bge-m3's spec declares
    assert plain.encode_document(DOCS[:2]).multivector is None
    asked = _encoder(onnx_exports["m3"], multivector=True)
    assert asked.spec == plain.spec
    vectors = asked.encode_document(DOCS).multivector
    assert vectors is not None and len(vectors) == len(DOCS)
    for text, rows in zip(DOCS, vectors):
        tokens = len(asked.token_offsets(text))
        assert rows.shape == (min(tokens + 1, MAX_LENGTH - 1), 32)  # + </s>, no <s>, no padding
        assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert asked.encode_document([]).multivector == []


def test_fp32_fingerprint_is_bge_m3_s_and_int8_s_is_its_own(onnx_exports, tiny_bge_m3_path):
    torch_spec = BGEM3Encoder(EncoderOptions(model=str(tiny_bge_m3_path), max_length=MAX_LENGTH)).spec
    assert _encoder(onnx_exports["m3"]).spec.fingerprint() == torch_spec.fingerprint()
    int8 = _encoder(onnx_exports["m3-int8"]).spec.fingerprint()
    assert int8 == {**torch_spec.fingerprint(), "model": f"{tiny_bge_m3_path} (onnx int8)"}


def test_tokens_match_the_bge_m3_encoder(onnx_exports, tiny_bge_m3_path):
    ours = _encoder(onnx_exports["m3"])
    torch_encoder = BGEM3Encoder(EncoderOptions(model=str(tiny_bge_m3_path)))
    for text in DOCS + ["  spaces\tand\nlines  ", "日本語 ünïcödé"]:
        assert ours.token_offsets(text) == torch_encoder.token_offsets(text)
    assert ours.decode_terms([5, 17, 300]) == torch_encoder.decode_terms([5, 17, 300])


def test_fp32_reranker_equals_transformers(onnx_exports, tiny_reranker_path):
    reference = CrossEncoderReranker(RerankerOptions(model=str(tiny_reranker_path), device="cpu", max_length=MAX_LENGTH))
    exported = OnnxCrossEncoderReranker(
        RerankerOptions(model=str(onnx_exports["reranker"]), device="cpu", max_length=MAX_LENGTH, batch_size=3)
    )
    passages = [d for d in DOCS if len(d) < 100]  # within max_length: both truncate alike
    for query in QUERIES:
        assert np.abs(exported.score(query, passages) - reference.score(query, passages)).max() < 1e-4
    assert exported.spec.model == str(tiny_reranker_path)


def test_int8_keeps_the_ranking_of_the_fixture_set(onnx_exports):
    found = bench_onnx_int8.measure(
        (onnx_exports["m3"], onnx_exports["m3-int8"]),
        (onnx_exports["reranker"], onnx_exports["reranker-int8"]),
        bench_onnx_int8.TINY_QUERIES,
        bench_onnx_int8.tiny_documents(),
        MAX_LENGTH,
    )
    for name, floor in MIN_KENDALL.items():
        assert found[name]["kendall"] >= floor, (name, found[name])
        assert found[name]["top5"] >= 0.6, (name, found[name])


def test_a_retriever_ingests_and_searches_with_the_onnx_profile(make_retriever, corpus_docs, onnx_exports):
    r = make_retriever(
        profile="bge-m3-cpu", dense_model=str(onnx_exports["m3-int8"]), reranker_model=str(onnx_exports["reranker-int8"])
    )
    assert r.encoders.dense is r.encoders.sparse  # one session run serves both branches
    r.ingest(corpus_docs)
    result = r.search("capital of France", top_k=3)
    assert len(result.hits) == 3
    hit = result.hits[0]
    assert hit.scores.dense is not None and hit.scores.rerank_logit is not None


def test_collections_are_shared_with_bge_m3_in_fp32_only(make_retriever, corpus_docs, onnx_exports, tmp_path):
    location = str(tmp_path / "shared")
    torch_r = make_retriever(location=location)
    torch_r.ingest(corpus_docs)
    expected = torch_r.search("capital of France", top_k=5, rerank=False)
    torch_r.close()
    onnx = {"profile": "bge-m3-cpu", "reranker_model": str(onnx_exports["reranker"])}
    fp32 = make_retriever(location=location, dense_model=str(onnx_exports["m3"]), **onnx)
    found = fp32.search("capital of France", top_k=5, rerank=False)
    assert [h.doc_id for h in found.hits] == [h.doc_id for h in expected.hits]
    assert np.allclose([h.scores.dense for h in found.hits], [h.scores.dense for h in expected.hits], atol=1e-5)
    fp32.close()
    with pytest.raises(FingerprintMismatchError):
        make_retriever(location=location, dense_model=str(onnx_exports["m3-int8"]), **onnx)


def test_the_profile_names_export_onnx_when_its_directories_are_missing(make_retriever, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="m3retriever model export-onnx BAAI/bge-m3 ~/.cache/m3retriever/onnx/bge-m3-int8 --int8"):
        make_retriever(profile="bge-m3-cpu", dense_model=None, reranker_model=None).search("q")
