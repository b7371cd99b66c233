"""BGEM3Encoder on a tiny random model with the exact BGE-M3 layout (no mocks)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from m3retriever.encoders import bge_m3
from m3retriever.encoders.base import EncoderOptions
from m3retriever.encoders.bge_m3 import BGEM3Encoder
from m3retriever.errors import ConfigError, InputError, ModelNotFoundError
from m3retriever.types import SparseVector

DOCS = [
    "The cat sat on the mat and looked at the garden.",
    "The stock market fell after the central bank raised interest rates.",
    "Café in München: naïve prices, €24.50!",
    "",
    "Paris is the capital of France. " * 20,
]
QUERIES = ["where is the cat?", "interest rates", "capital of France"]
SPECIAL_IDS = {0, 1, 2, 3}  # <s> <pad> </s> <unk>: never in lexical weights


@pytest.fixture(scope="module")
def encoder(tiny_bge_m3_path: Path) -> BGEM3Encoder:
    return BGEM3Encoder(EncoderOptions(model=str(tiny_bge_m3_path), device="cpu", batch_size=2))


@pytest.fixture(scope="module")
def reference(tiny_bge_m3_path: Path):  # type: ignore[no-untyped-def]
    """FlagEmbedding's own model, loaded independently of our cache."""
    from FlagEmbedding import BGEM3FlagModel

    return BGEM3FlagModel(str(tiny_bge_m3_path), use_fp16=False, devices="cpu")


def _reference_sparse(weights: dict) -> dict[int, float]:
    return {int(k): float(v) for k, v in weights.items() if float(v) > 0}


@pytest.mark.parametrize("side", ["query", "documents"])
def test_matches_flagembedding(encoder: BGEM3Encoder, reference, side: str) -> None:  # type: ignore[no-untyped-def]
    texts = QUERIES if side == "query" else DOCS
    ours = encoder.encode_query(texts) if side == "query" else encoder.encode_document(texts)
    theirs = reference.encode(
        texts, batch_size=4, max_length=512, return_dense=True, return_sparse=True
    )
    assert ours.dense is not None and ours.sparse is not None
    assert np.allclose(ours.dense, theirs["dense_vecs"], atol=1e-5)
    assert len(ours.sparse) == len(texts)
    for mine, their in zip(ours.sparse, theirs["lexical_weights"]):
        expected = _reference_sparse(their)
        got = mine.as_dict()
        assert got.keys() == expected.keys()
        assert all(np.isclose(got[k], expected[k], atol=1e-5) for k in got)


def test_dense_is_normalized_float32(encoder: BGEM3Encoder) -> None:
    enc = encoder.encode_document(DOCS)
    assert enc.dense is not None
    assert enc.dense.dtype == np.float32
    assert enc.dense.shape == (len(DOCS), 32)
    assert np.allclose(np.linalg.norm(enc.dense, axis=1), 1.0, atol=1e-5)
    # initializer_range=0.5 keeps different texts apart
    assert not np.allclose(enc.dense[0], enc.dense[1])


def test_sparse_vectors_are_typed_and_sorted(encoder: BGEM3Encoder) -> None:
    enc = encoder.encode_document(DOCS)
    assert enc.sparse is not None
    for vec in enc.sparse:
        assert isinstance(vec, SparseVector)
        assert all(type(i) is int for i in vec.indices)
        assert all(type(v) is float and v > 0 for v in vec.values)
        assert list(vec.indices) == sorted(set(vec.indices))
        assert not SPECIAL_IDS & set(vec.indices)
    assert len(enc.sparse[0]) > 0
    assert len(enc.sparse[3]) == 0  # the empty string has no terms


def test_deterministic_across_calls(encoder: BGEM3Encoder) -> None:
    first = encoder.encode_document(DOCS)
    second = encoder.encode_document(DOCS)
    assert first.dense is not None and second.dense is not None
    assert np.array_equal(first.dense, second.dense)
    assert first.sparse == second.sparse
    # order and batch composition do not change a text's vectors
    alone = encoder.encode_document([DOCS[1]])
    assert alone.dense is not None
    assert np.allclose(alone.dense[0], first.dense[1], atol=1e-5)


def test_query_and_document_paths(encoder: BGEM3Encoder) -> None:
    q = encoder.encode_query(QUERIES)
    d = encoder.encode_document(QUERIES)
    assert q.dense is not None and d.dense is not None
    assert q.dense.shape == d.dense.shape == (len(QUERIES), 32)
    assert len(q) == len(QUERIES)
    # BGE-M3 uses no query instruction: both sides give the same vectors
    assert np.allclose(q.dense, d.dense, atol=1e-5)


def test_query_instruction_is_prepended_to_queries(tiny_bge_m3_path: Path, encoder: BGEM3Encoder) -> None:
    instructed = BGEM3Encoder(
        EncoderOptions(model=str(tiny_bge_m3_path), device="cpu", batch_size=2, query_instruction="q: ")
    )
    got = instructed.encode_query(["where is the cat?"])
    want = encoder.encode_query(["q: where is the cat?"])
    np.testing.assert_allclose(got.dense, want.dense, atol=1e-6)
    assert got.sparse == want.sparse
    np.testing.assert_allclose(
        instructed.encode_document(["a cat"]).dense, encoder.encode_document(["a cat"]).dense, atol=1e-6
    )
    assert instructed.spec.query_instruction == "q: "


def test_empty_input(tiny_bge_m3_path: Path) -> None:
    enc = BGEM3Encoder(EncoderOptions(model=str(tiny_bge_m3_path), device="cpu"))
    for out in (enc.encode_query([]), enc.encode_document([])):
        assert out.dense is not None
        assert out.dense.shape == (0, 32)
        assert out.dense.dtype == np.float32
        assert out.sparse == []


def test_rejects_bad_input(encoder: BGEM3Encoder) -> None:
    with pytest.raises(InputError):
        encoder.encode_query("a single string")
    with pytest.raises(InputError):
        encoder.encode_document(["ok", 3])  # type: ignore[list-item]


def test_model_loaded_once_for_two_instances(tiny_bge_m3_path: Path, encoder: BGEM3Encoder) -> None:
    other = BGEM3Encoder(EncoderOptions(model=str(tiny_bge_m3_path), device="cpu", batch_size=7))
    assert other.model is encoder.model
    # another spelling of the same directory shares the model too
    assert other.model is BGEM3Encoder(EncoderOptions(model=str(tiny_bge_m3_path) + "/", device="cpu")).model
    keys = [k for k in bge_m3._models.keys() if k[0] == str(tiny_bge_m3_path)]
    assert keys == [(str(tiny_bge_m3_path), "cpu", False)]


def test_spec_without_loading_weights(tmp_path: Path, tiny_bge_m3_path: Path) -> None:
    copy = tmp_path / "m3-copy"
    shutil.copytree(tiny_bge_m3_path, copy)
    enc = BGEM3Encoder(EncoderOptions(model=str(copy), device="cpu", max_length=256))
    spec = enc.spec
    assert spec.name == "bge-m3"
    assert spec.model == str(copy)
    assert spec.dense_dim == 32
    assert spec.distance == "cosine"
    assert spec.sparse_kind == "learned"
    assert spec.sparse_idf is False
    assert spec.pooling == "cls"
    assert spec.max_length == 256
    assert spec.produces_dense and spec.produces_sparse
    # the hub id's dimension is known without any download
    hub = BGEM3Encoder(EncoderOptions(model="BAAI/not-a-cached-model-m3r", device="cpu"))
    assert hub.spec.dense_dim == 1024
    assert BGEM3Encoder(EncoderOptions()).spec.model == "BAAI/bge-m3"
    # token_offsets loaded the tokenizer only
    assert enc.token_offsets("hello world")
    assert not [k for k in bge_m3._models.keys() if k[0] == str(copy)]


def test_dims_not_supported(tiny_bge_m3_path: Path) -> None:
    with pytest.raises(ConfigError, match="Matryoshka"):
        BGEM3Encoder(EncoderOptions(model=str(tiny_bge_m3_path), dims=256))


def test_token_offsets_slice_the_text(encoder: BGEM3Encoder) -> None:
    text = "The café in München costs €24.50; the cat sat on the mat."
    spans = encoder.token_offsets(text)
    assert spans and all(isinstance(s, tuple) and len(s) == 2 for s in spans)
    starts = [s for s, _ in spans]
    assert starts == sorted(starts)
    assert all(0 <= s < e <= len(text) for s, e in spans)
    assert all(text[s:e].strip() == text[s:e] for s, e in spans)  # no whitespace inside a token
    covered = {i for s, e in spans for i in range(s, e)}
    assert covered == {i for i, ch in enumerate(text) if not ch.isspace()}
    assert text[spans[0][0] : spans[0][1]].startswith("T")
    assert text[spans[-1][0] : spans[-1][1]].endswith(".")


def test_token_offsets_do_not_truncate(encoder: BGEM3Encoder) -> None:
    text = "the cat sat on the mat " * 200
    spans = encoder.token_offsets(text)
    assert len(spans) > 512
    assert spans[-1][1] == len(text.rstrip())


def test_decode_terms(encoder: BGEM3Encoder) -> None:
    enc = encoder.encode_document(["The cat sat on the mat."])
    assert enc.sparse is not None
    ids = list(enc.sparse[0].indices)
    terms = encoder.decode_terms(ids)
    assert len(terms) == len(ids)
    assert all(isinstance(t, str) for t in terms)
    assert not any("\u2581" in t for t in terms)
    assert "mat" in terms
    assert encoder.decode_terms([]) == []


def test_missing_local_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-bge-m3"
    enc = BGEM3Encoder(EncoderOptions(model=str(missing), device="cpu"))
    assert enc.spec.dense_dim == 1024  # unknown: the production default
    with pytest.raises(ModelNotFoundError) as info:
        enc.encode_query(["hello"])
    message = str(info.value)
    assert str(missing) in message
    assert 'EncoderOptions(model="/path/to/bge-m3")' in message
    assert "M3R_DENSE_MODEL" in message
    assert "download BAAI/bge-m3" in message
    with pytest.raises(ModelNotFoundError):
        enc.token_offsets("hello")


def test_missing_hub_model_offline_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = BGEM3Encoder(EncoderOptions(model="BAAI/not-a-cached-model-m3r", device="cpu"))
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError) as info:
        enc.encode_document(["hello"])
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "BAAI/not-a-cached-model-m3r" in message
    assert "offline" in message
    assert "/path/to/bge-m3" in message


def test_directory_without_sparse_head(tmp_path: Path, tiny_bge_m3_path: Path) -> None:
    broken = tmp_path / "no-heads"
    shutil.copytree(tiny_bge_m3_path, broken)
    (broken / "sparse_linear.pt").unlink()
    with pytest.raises(ModelNotFoundError, match="sparse_linear.pt"):
        BGEM3Encoder(EncoderOptions(model=str(broken), device="cpu")).encode_query(["x"])


def test_max_length_truncates(tiny_bge_m3_path: Path, encoder: BGEM3Encoder) -> None:
    short = BGEM3Encoder(EncoderOptions(model=str(tiny_bge_m3_path), device="cpu", max_length=8))
    long_text = DOCS[4]
    a = short.encode_document([long_text])
    b = encoder.encode_document([long_text])
    assert a.dense is not None and b.dense is not None
    assert not np.allclose(a.dense, b.dense)
    assert short.model is encoder.model  # max_length is per call, the model is shared


def test_max_length_capped_at_position_embeddings(
    tiny_bge_m3_path: Path, encoder: BGEM3Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    huge = BGEM3Encoder(EncoderOptions(model=str(tiny_bge_m3_path), device="cpu", max_length=5000))
    very_long = "Paris is the capital of France. " * 120  # well over 514 tokens
    assert len(huge.token_offsets(very_long)) > 600
    with caplog.at_level("WARNING", logger="m3retriever.encoders.bge_m3"):
        capped = huge.encode_document([very_long])
    assert "using 512" in caplog.text
    normal = encoder.encode_document([very_long])
    assert capped.dense is not None and normal.dense is not None
    assert np.allclose(capped.dense, normal.dense, atol=1e-5)
