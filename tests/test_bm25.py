"""BM25 encoder: analyzer, stable term ids, saturation, query vectors. No model needed."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from m3retriever.encoders.base import EncoderOptions  # noqa: E402
from m3retriever.encoders.bm25 import BM25_MODEL, ENGLISH_STOPWORDS, BM25Encoder, term_id  # noqa: E402
from m3retriever.errors import ConfigError, InputError  # noqa: E402
from m3retriever.store.kept import length_stats
from m3retriever.store.schema import StoredPoint  # noqa: E402
from m3retriever.types import LengthStats, SparseVector  # noqa: E402
from maintenance_calls import renormalize_config

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
    # The document vectors depend on k1, b and where the average length comes from, so the
    # fingerprint records them (a collection built with the former fixed 256 has none).
    assert spec.fingerprint()["parameters"] == {"k1": 1.2, "b": 0.75, "avg_len": "collection"}
    assert BM25Encoder(avg_len=100.0, k1=0.9, b=0.4).spec.fingerprint()["parameters"] == {
        "k1": 0.9, "b": 0.4, "avg_len": 100.0,
    }  # fmt: skip


def test_document_weights_use_the_average_of_the_texts(enc: BM25Encoder) -> None:
    # Alone, a batch is its own collection: "cat cat dog" (3 terms) and "dog bird fish horse"
    # (4 terms) average 3.5 terms.
    a, b = enc.encode_document(["cat cat dog", "the dog, a bird, fish and horse"]).sparse
    norm_a = 1.2 * (0.25 + 0.75 * 3 / 3.5)  # 1.0714286
    norm_b = 1.2 * (0.25 + 0.75 * 4 / 3.5)  # 1.3285714
    assert _weights(enc, a) == pytest.approx({"cat": 2 * 2.2 / (2 + norm_a), "dog": 2.2 / (1 + norm_a)})
    assert _weights(enc, a)["cat"] == pytest.approx(1.4325581)
    assert _weights(enc, b)["dog"] == pytest.approx(2.2 / (1 + norm_b)) == pytest.approx(0.9447853)
    assert enc.document_lengths(["cat cat dog", "the dog, a bird, fish and horse"]) == [3, 4]


def test_document_weights_use_the_collection_average(enc: BM25Encoder) -> None:
    collection = LengthStats(total=60, count=10)  # average 6 before this batch
    encoding, own = enc.encode_document_normalized(["cat cat dog"], collection)
    (vec,) = encoding.sparse or []
    assert own == LengthStats(3, 1)
    norm = 1.2 * (0.25 + 0.75 * 3 / (63 / 11))  # the batch counts into the average
    assert _weights(enc, vec)["cat"] == pytest.approx(2 * 2.2 / (2 + norm))
    (vec,) = enc.encode_document_normalized(["cat cat dog"], collection, include_texts=False)[0].sparse or []
    norm = 1.2 * (0.25 + 0.75 * 3 / 6)  # re-encoding: the collection already counts it
    assert _weights(enc, vec)["cat"] == pytest.approx(2 * 2.2 / (2 + norm))
    fixed = BM25Encoder(avg_len=4.0)
    (vec,) = fixed.encode_document_normalized(["cat cat dog"], collection)[0].sparse or []
    assert _weights(fixed, vec)["cat"] == pytest.approx(2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 3 / 4)))


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


def test_query_weights_count_each_occurrence(enc: BM25Encoder) -> None:
    # Lucene, Anserini and bm25s count a repeated query term once per occurrence.
    vec = enc.encode_query(["cats cat CAT dogs"]).sparse[0]
    assert len(vec) == 2
    assert _weights(enc, vec) == {"cats": 3.0, "dogs": 1.0}  # shown in the first surface form
    assert list(vec.indices) == sorted(vec.indices)
    # stopwords are not counted
    assert _weights(enc, enc.encode_query(["the cat and the cat"]).sparse[0]) == {"cat": 2.0}


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


# -- through a real store: the collection's average, its drift and renormalize --------------

IDF_CAT = math.log(1 + (2 - 1 + 0.5) / (1 + 0.5))  # Qdrant's IDF with N = 2 chunks, df = 1
IDF_DOG = math.log(1 + (2 - 2 + 0.5) / (2 + 0.5))  # df = 2
DOC_A = {"doc_id": "a", "text": "cat cat dog"}  # 3 terms
DOC_B = {"doc_id": "b", "text": "the dog, a bird, fish and horse"}  # 4 terms


def _bm25_only(location: str) -> Any:
    from m3retriever import Retriever, load_config

    cfg = load_config(
        env={}, location=location, profile="small", dense_encoder="none", sparse_encoder="none",
        bm25=True, reranker="none",
    )  # fmt: skip
    return Retriever(cfg), cfg


def _saturated(tf: int, length: int, avg_len: float) -> float:
    return tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / avg_len))


def _stored_bm25(r: Any) -> dict[str, dict[str, float]]:
    vectors = {}
    for rec in r.store.scroll(r.collection, with_vectors=True):
        vectors[rec.payload["doc_id"]] = _weights(r.encoders.bm25, rec.vectors["bm25"])
    return vectors


@pytest.mark.parametrize("backend", ["edge", "qdrant-client"])
def test_search_scores_are_bm25_with_the_collection_average(tmp_path: Path, backend: str) -> None:
    location = str(tmp_path / "store") if backend == "edge" else ":memory:"
    r, _ = _bm25_only(location)
    with r:
        r.ingest([DOC_A, DOC_B])  # one batch: the average is (3 + 4) / 2 = 3.5
        assert length_stats(r.store, r.collection) == {"bm25": LengthStats(7, 2)}
        hits = r.search("cat cat dog", top_k=2)
        # the query counts "cat" twice: 2 * idf(cat) * w(cat) + idf(dog) * w(dog)
        score_a = 2 * IDF_CAT * _saturated(2, 3, 3.5) + IDF_DOG * _saturated(1, 3, 3.5)
        score_b = IDF_DOG * _saturated(1, 4, 3.5)
        assert [h.doc_id for h in hits] == ["a", "b"]
        assert hits[0].scores.bm25 == pytest.approx(score_a, rel=1e-5) == pytest.approx(2.1795735, rel=1e-5)
        assert hits[1].scores.bm25 == pytest.approx(score_b, rel=1e-5) == pytest.approx(0.1722531, rel=1e-5)


def test_average_drifts_across_batches_and_renormalize_recounts(tmp_path: Path) -> None:
    from m3retriever import renormalize

    r, cfg = _bm25_only(str(tmp_path / "store"))
    with r:
        r.ingest([DOC_A])  # alone: its own length is the average (3)
        r.ingest([DOC_B])  # average of both: 3.5
        r.ingest([DOC_A, DOC_B])  # unchanged: skipped, not counted again
        assert length_stats(r.store, r.collection) == {"bm25": LengthStats(7, 2)}
        stored = _stored_bm25(r)
        assert stored["a"]["cat"] == pytest.approx(_saturated(2, 3, 3.0))  # the average of its time
        assert stored["b"]["dog"] == pytest.approx(_saturated(1, 4, 3.5))
        r.ingest([{"doc_id": "a", "text": "cat cat cat cat cat dog"}])  # changed: 6 terms
        # rewritten chunks stay counted: (7 + 6) / 3, not the collection's (6 + 4) / 2
        assert length_stats(r.store, r.collection) == {"bm25": LengthStats(13, 3)}
        report = renormalize(r.opened)
        assert report.chunks == 2 and not report.upgraded
        assert report.after == {"bm25": LengthStats(10, 2)} == length_stats(r.store, r.collection)
        stored = _stored_bm25(r)
        assert stored["a"]["cat"] == pytest.approx(_saturated(5, 6, 5.0))
        assert stored["b"]["dog"] == pytest.approx(_saturated(1, 4, 5.0))
        assert r.count() == 2 and [h.doc_id for h in r.search("cat")] == ["a"]


def test_old_collection_is_refused_then_upgraded_in_place(tmp_path: Path) -> None:
    from m3retriever import FingerprintMismatchError, Retriever
    from m3retriever.types import SparseVector as SV

    location = tmp_path / "store"
    r, cfg = _bm25_only(str(location))
    with r:
        r.ingest([DOC_A, DOC_B])
        # What an older version left: vectors normalised by a fixed 256 terms, no BM25
        # parameters in the fingerprint and no length totals.
        legacy = BM25Encoder(avg_len=256.0)
        points = [
            StoredPoint(id=rec.id, payload=rec.payload, bm25=legacy.encode_document([rec.payload["text"]]).sparse[0])
            for rec in r.store.scroll(r.collection)
        ]
        r.store.upsert(r.collection, points)
    meta_path = location / f"{cfg.collection}.m3r.json"
    meta = json.loads(meta_path.read_text())
    del meta["fingerprint"]["bm25"]["parameters"], meta["lengths"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(FingerprintMismatchError, match="bm25.parameters.avg_len.*m3retriever collection renormalize"):
        Retriever(cfg)
    report = renormalize_config(cfg)
    assert report.upgraded and report.chunks == 2 and report.before == {}
    r, _ = _bm25_only(str(location))
    with r:
        stored = _stored_bm25(r)
        assert stored["a"]["cat"] == pytest.approx(_saturated(2, 3, 3.5))
        assert isinstance(r.store.scroll(r.collection, with_vectors=True).__next__().vectors["bm25"], SV)
        # the upgrade keeps the content hashes valid: unchanged documents are still skipped
        assert r.ingest([DOC_A, DOC_B]).skipped == 2


def test_renormalize_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from m3retriever.cli import main

    location = str(tmp_path / "store")
    r, _ = _bm25_only(location)
    with r:
        r.ingest([DOC_A])
        r.ingest([DOC_B])
    args = ["--location", location, "--profile", "small"]
    env = {"M3R_DENSE_ENCODER": "none", "M3R_SPARSE_ENCODER": "none", "M3R_RERANKER": "none"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        assert main(["collection", "renormalize", *args]) == 0
    out = capsys.readouterr().out
    assert "2 chunks" in out and "average 3.50" in out


def test_renormalize_keeps_every_other_vector(tmp_path: Path, tiny_bge_m3_path: Path) -> None:
    """The rewrite replaces the BM25 vectors only: an extra dense branch (``dense2``) is kept."""
    from m3retriever import Retriever, load_config, renormalize

    cfg = load_config(
        env={}, location=str(tmp_path / "store"), profile="small", dense_encoder="none",
        sparse_encoder="none", bm25=True, reranker="none", dense2_encoder="bge-m3",
        dense2_model=str(tiny_bge_m3_path), device="cpu", max_length=64,
    )  # fmt: skip
    with Retriever(cfg) as r:
        r.ingest([DOC_A])
        r.ingest([DOC_B])
        before = {rec.id: rec.vectors for rec in r.store.scroll(r.collection, with_vectors=True)}
        assert renormalize(r.opened).chunks == 2
        after = {rec.id: rec.vectors for rec in r.store.scroll(r.collection, with_vectors=True)}
        assert after.keys() == before.keys()
        for pid, vectors in after.items():
            assert set(vectors) == {"bm25", "dense2"}
            assert vectors["dense2"] == pytest.approx(before[pid]["dense2"])
        assert _stored_bm25(r)["a"]["cat"] == pytest.approx(_saturated(2, 3, 3.5))
