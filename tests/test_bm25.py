"""BM25 encoder: analyzer, stable term ids, saturation, query vectors. No model needed."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

import pytest  # noqa: E402

from m3retriever.encoders.base import EncoderOptions  # noqa: E402
from m3retriever.encoders.bm25 import BM25_MODEL, ENGLISH_STOPWORDS, BM25Encoder, term_id  # noqa: E402
from m3retriever.errors import ConfigError, InputError  # noqa: E402
from m3retriever.types import SparseVector  # noqa: E402

# blake2b(b"cat", digest_size=8), first 8 bytes little-endian, masked to 31 bits. Hard-coded so
# a change of hash function, byte order or mask (which would orphan every indexed collection)
# fails this test.
CAT_ID = 752690995


@pytest.fixture()
def enc() -> BM25Encoder:
    return BM25Encoder(EncoderOptions())


def _weights(enc: BM25Encoder, vec: SparseVector) -> dict[str, float]:
    return dict(zip(enc.decode_terms(vec.indices), vec.values))


def test_spec(enc: BM25Encoder) -> None:
    spec = enc.spec
    assert spec.name == "bm25"
    assert spec.model == BM25_MODEL == "bm25-en-snowball"
    assert spec.dense_dim is None and not spec.produces_dense
    assert spec.sparse_kind == "bm25" and spec.sparse_idf is True
    assert spec.produces_sparse


def test_analyzer_lowercases_splits_and_stems(enc: BM25Encoder) -> None:
    assert enc.analyze("The Cats are RUNNING quickly; e-mail foo_bar 42x") == [
        "cat", "run", "quick", "e", "mail", "foo", "bar", "42x",
    ]  # fmt: skip


def test_analyzer_is_unicode_aware(enc: BM25Encoder) -> None:
    terms = enc.analyze("Café naïve—Straße, 東京タワー!")
    assert "café" in terms and "straße" in terms
    assert any("東京" in t for t in terms)  # CJK runs are kept as words, not dropped
    assert all(t and t == t.lower() for t in terms)


def test_snowball_english_stemming(enc: BM25Encoder) -> None:
    # Porter2 (Snowball English) specifics: "generously" -> "generous", "studies" -> "studi".
    assert enc.analyze("studies studying") == ["studi", "studi"]
    assert enc.analyze("generously") == ["generous"]
    assert enc.analyze("connection connected connecting") == ["connect"] * 3


def test_stopwords_are_the_lucene_english_list(enc: BM25Encoder) -> None:
    assert len(ENGLISH_STOPWORDS) == 33
    assert {"the", "and", "of", "is", "not", "with"} <= ENGLISH_STOPWORDS
    assert enc.analyze("the and of is it to in") == []
    assert enc.analyze("To be or not to be") == []


def test_term_id_is_31_bit_blake2b(enc: BM25Encoder) -> None:
    expected = int.from_bytes(hashlib.blake2b(b"cat", digest_size=8).digest(), "little") & (2**31 - 1)
    assert term_id("cat") == expected == CAT_ID
    assert enc.encode_query(["cats"]).sparse[0].indices == (CAT_ID,)
    for term in ["a", "zebra", "東京", "x" * 200]:
        assert 0 <= term_id(term) < 2**31


def test_term_ids_stable_across_processes() -> None:
    code = (
        "import json; from m3retriever.encoders.bm25 import BM25Encoder;"
        "v = BM25Encoder().encode_document(['Cats chase mice; the mice flee.']).sparse[0];"
        "print(json.dumps([list(v.indices), list(v.values)]))"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout
        outputs.add(out)
    assert len(outputs) == 1
    indices, _ = json.loads(outputs.pop())
    here = BM25Encoder().encode_document(["Cats chase mice; the mice flee."]).sparse[0]
    assert indices == list(here.indices)
    assert CAT_ID in indices


def test_document_weights_are_bm25_saturated_tf() -> None:
    enc = BM25Encoder(avg_len=4.0)
    vec = enc.encode_document(["cat cat cat dog"]).sparse[0]  # 4 terms, avg_len 4: norm = k1
    w = _weights(enc, vec)
    k1 = 1.2
    assert w["cat"] == pytest.approx(3 * (k1 + 1) / (3 + k1))
    assert w["dog"] == pytest.approx(1 * (k1 + 1) / (1 + k1)) == pytest.approx(1.0)


def test_saturation_monotone_and_bounded(enc: BM25Encoder) -> None:
    weights = []
    for tf in (1, 2, 5, 50, 500):
        vec = enc.encode_document([" ".join(["cat"] * tf + ["filler"] * (256 - tf))]).sparse[0]
        weights.append(dict(zip(vec.indices, vec.values))[CAT_ID])
    assert weights == sorted(weights)
    assert all(w < enc.k1 + 1 for w in weights)
    assert weights[-1] > 0.95 * (enc.k1 + 1) * 500 / (500 + enc.k1)


def test_longer_documents_weigh_a_term_less(enc: BM25Encoder) -> None:
    short, long = enc.encode_document(["cat dog", "cat " + "dog " * 600]).sparse
    assert dict(zip(short.indices, short.values))[CAT_ID] > dict(zip(long.indices, long.values))[CAT_ID]


def test_constructor_parameters() -> None:
    enc = BM25Encoder(k1=0.0)
    vec = enc.encode_document(["cat cat cat"]).sparse[0]
    assert vec.values == (1.0,)  # k1 = 0: binary term presence
    for kwargs in ({"k1": -1.0}, {"b": 1.5}, {"avg_len": 0.0}):
        with pytest.raises(ConfigError):
            BM25Encoder(**kwargs)  # type: ignore[arg-type]


def test_query_weights_are_one_per_unique_term(enc: BM25Encoder) -> None:
    vec = enc.encode_query(["cats cat CAT dogs"]).sparse[0]
    assert len(vec) == 2
    assert vec.values == (1.0, 1.0)
    assert list(vec.indices) == sorted(vec.indices)


def test_empty_and_stopword_only_queries_give_empty_vectors(enc: BM25Encoder) -> None:
    out = enc.encode_query(["", "the of and", "!!! ..."]).sparse
    assert out is not None and len(out) == 3
    assert all(len(v) == 0 and v.indices == () for v in out)
    assert enc.encode_document([""]).sparse == [SparseVector((), ())]


def test_encoding_shape(enc: BM25Encoder) -> None:
    out = enc.encode_document(["a cat", "a dog", "a bird"])
    assert out.dense is None and out.sparse is not None and len(out) == 3
    assert enc.encode_document([]).sparse == []
    for vec in out.sparse:
        assert all(isinstance(i, int) for i in vec.indices)
        assert all(isinstance(v, float) and v > 0 for v in vec.values)


def test_token_offsets_are_word_spans(enc: BM25Encoder) -> None:
    text = "The cat, naïvely, sat."
    spans = enc.token_offsets(text)
    assert [text[s:e] for s, e in spans] == ["The", "cat", "naïvely", "sat"]


def test_decode_terms_prefers_query_words(enc: BM25Encoder) -> None:
    doc = enc.encode_document(["running dogs"]).sparse[0]
    assert sorted(enc.decode_terms(doc.indices)) == ["dogs", "running"]
    enc.encode_query(["Dog runs"])
    assert sorted(enc.decode_terms(doc.indices)) == ["dog", "runs"]
    assert enc.decode_terms([12345]) == ["12345"]


def test_rejects_bad_input_and_options() -> None:
    enc = BM25Encoder()
    with pytest.raises(InputError):
        enc.encode_query("a single string")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        enc.encode_document(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ConfigError):
        BM25Encoder(EncoderOptions(dims=64))
    with pytest.raises(ConfigError):
        BM25Encoder(EncoderOptions(model="bm25-fr"))
    assert BM25Encoder(EncoderOptions(model=BM25_MODEL)).spec.model == BM25_MODEL


def test_thread_safe_stemming() -> None:
    enc = BM25Encoder()
    expected = enc.encode_document(["studies of running cats"]).sparse[0]
    results: list[SparseVector] = []

    def work() -> None:
        for _ in range(50):
            results.append(enc.encode_document(["studies of running cats"]).sparse[0])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200 and all(r == expected for r in results)


def test_registered_builtin_factory() -> None:
    from m3retriever import builtin

    assert isinstance(builtin._bm25(EncoderOptions()), BM25Encoder)
