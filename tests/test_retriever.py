"""End-to-end behaviour of the Retriever on a real embedded Qdrant Edge store, with the tiny
random BGE-M3 and bge-reranker models (real FlagEmbedding and sentence-transformers code)."""

from __future__ import annotations

import asyncio
import math
import re
from pathlib import Path

import pytest

from conftest import QUERIES
from m3retriever import (
    AnyOf,
    Eq,
    FingerprintMismatchError,
    InputError,
    Not,
    Range,
)
from m3retriever.ingest import point_id


def test_ingest_then_search_reports_every_stage(make_retriever, corpus_docs):
    r = make_retriever()
    report = r.ingest(corpus_docs)
    assert (report.documents, report.added, report.skipped) == (len(corpus_docs), len(corpus_docs), 0)
    assert r.count() == report.chunks_written >= len(corpus_docs)

    result = r.search("capital of France", top_k=5)
    assert len(result) == 5
    finals = [h.scores.final for h in result]
    assert finals == sorted(finals, reverse=True)
    assert [h.scores.final_rank for h in result] == [1, 2, 3, 4, 5]
    for hit in result:
        s = hit.scores
        assert hit.id == point_id(hit.doc_id, hit.chunk_index)
        assert hit.text and hit.source == f"test://{hit.doc_id}"
        assert hit.metadata["lang"] in {"en", "de", "es"}
        assert s.fused is not None and s.fused_rank is not None
        assert s.dense is not None or s.sparse is not None
        assert s.rerank == pytest.approx(1 / (1 + math.exp(-s.rerank_logit)), rel=1e-6)
        assert s.final == pytest.approx(s.rerank)  # profile default: rerank decides
    # every candidate the engine fused came from a branch: dense ranks exist for all hits
    # (12 documents < prefetch limit, so the dense branch sees them all)
    assert all(h.scores.dense_rank is not None for h in result)
    assert set(result.timings_ms) == {"encode", "search", "rerank", "total"}


def test_rerank_off_orders_by_fused_score(make_retriever, corpus_docs):
    r = make_retriever()
    r.ingest(corpus_docs)
    result = r.search("rank fusion", top_k=6, rerank=False)
    assert all(h.scores.rerank is None and h.scores.rerank_logit is None for h in result)
    assert [h.scores.final for h in result] == [h.scores.fused for h in result]
    assert [h.scores.fused_rank for h in result] == [1, 2, 3, 4, 5, 6]


def test_rrf_fused_score_matches_branch_ranks(make_retriever, corpus_docs):
    """The engine's RRF (k=60) is the sum over branches of 1/(k + rank - 1) (Qdrant counts
    ranks from 0)."""
    r = make_retriever()
    r.ingest(corpus_docs)
    for hit in r.search("vector database filters", top_k=8, rerank=False):
        s = hit.scores
        expected = sum(1.0 / (60 + rank - 1) for rank in (s.dense_rank, s.sparse_rank) if rank is not None)
        assert s.fused == pytest.approx(expected, rel=1e-4)


def test_interpolated_rerank_weight_mixes_stages(make_retriever, corpus_docs):
    r = make_retriever()
    r.ingest(corpus_docs)
    pure_fused = r.search("stock market", top_k=12, rerank_weight=0.0)
    assert [h.doc_id for h in pure_fused] == [h.doc_id for h in r.search("stock market", top_k=12, rerank=False)]
    mixed = r.search("stock market", top_k=12, rerank_weight=0.5)
    assert all(0.0 <= h.scores.final <= 1.0 for h in mixed)


def test_min_score_gives_explicit_no_confident_match(make_retriever, corpus_docs):
    r = make_retriever()
    r.ingest(corpus_docs)
    none = r.search("capital of France", min_score=1.0)
    assert none.no_confident_match and len(none) == 0
    some = r.search("capital of France", min_score=0.0, top_k=3)
    assert not some.no_confident_match and len(some) == 3


def test_reingest_unchanged_costs_nothing(make_retriever, corpus_docs):
    r = make_retriever()
    first = r.ingest(corpus_docs)
    again = r.ingest(corpus_docs)
    assert again.skipped == len(corpus_docs)
    assert again.chunks_written == 0 and again.added == 0 and again.updated == 0
    assert r.count() == first.chunks_written


def test_changed_document_replaces_chunks_without_stale_ones(make_retriever):
    r = make_retriever()
    long_text = " ".join(f"sentence number {i} talks about topic {i % 7}." for i in range(60))
    r.ingest([{"doc_id": "d", "text": long_text}, {"doc_id": "other", "text": "unrelated text"}])
    n_long = r.count(Eq("doc_id", "d"))
    assert n_long > 2
    report = r.ingest([{"doc_id": "d", "text": "now a short text"}])
    assert report.updated == 1 and report.chunks_deleted == n_long - 1
    assert r.count(Eq("doc_id", "d")) == 1
    assert r.count() == 2
    hit = r.search("short text", top_k=1, filter={"doc_id": "d"})[0]
    assert hit.text == "now a short text"


def test_long_documents_are_chunked_with_overlap(make_retriever):
    r = make_retriever()
    text = " ".join(f"word{i}" for i in range(300))
    r.ingest([{"doc_id": "long", "text": text}])
    hits = r.search("word10 word11", top_k=50, rerank=False)
    chunks = sorted((h.chunk_index, h.text) for h in hits if h.doc_id == "long")
    assert [c for c, _ in chunks] == list(range(len(chunks)))
    tokenizer = r.encoders.chunking_encoder
    for _, chunk in chunks:
        assert len(tokenizer.token_offsets(chunk)) <= 48 + 2
    # consecutive chunks overlap
    assert chunks[0][1].split()[-1] in chunks[1][1]


def test_filters(make_retriever, corpus_docs):
    r = make_retriever()
    r.ingest(corpus_docs)
    cases = [
        (Eq("lang", "en"), lambda m: m["lang"] == "en"),
        (AnyOf("topic", ["geo", "ir"]), lambda m: m["topic"] in {"geo", "ir"}),
        (Range("year", gte=2015, lt=2021), lambda m: 2015 <= m["year"] < 2021),
        (Not(Eq("lang", "en")), lambda m: m["lang"] != "en"),
        (Eq("lang", "en") & Range("year", gt=2019), lambda m: m["lang"] == "en" and m["year"] > 2019),
        ({"topic": {"any": ["animals"]}, "year": {"lte": 2015}}, lambda m: m["topic"] == "animals" and m["year"] <= 2015),
    ]
    by_id = {d["doc_id"]: d["metadata"] for d in corpus_docs}
    for flt, pred in cases:
        expected = {d for d, m in by_id.items() if pred(m)}
        got = {h.doc_id for h in r.search("anything at all", top_k=20, filter=flt)}
        assert got == expected, flt


def test_delete_by_id_and_by_filter(make_retriever, corpus_docs):
    r = make_retriever()
    r.ingest(corpus_docs)
    total = r.count()
    assert r.delete(["paris"]) == 1
    assert r.count() == total - 1
    assert "paris" not in {h.doc_id for h in r.search("capital of France", top_k=20)}
    n_geo = r.count({"topic": "geo"})
    assert n_geo == 2
    assert r.delete(filter={"topic": "geo"}) == 2
    assert r.count({"topic": "geo"}) == 0
    with pytest.raises(InputError, match="refusing to delete everything"):
        r.delete()


@pytest.mark.parametrize(
    "bad, message",
    [
        ([{"doc_id": "x", "text": ""}], "text is empty"),
        ([{"doc_id": "x", "text": "   "}], "text is empty"),
        ([{"doc_id": "x", "text": 42}], "must be a string"),
        ([{"doc_id": "", "text": "hello"}], "doc_id must be a non-empty string"),
        ([{"doc_id": "x", "text": "hi", "metadata": {"when": object()}}], "is not JSON"),
        ([{"doc_id": "x", "text": "hi", "metadata": {"a.b": 1}}], "letters, digits"),
        ([{"doc_id": "x", "text": "a"}, {"doc_id": "x", "text": "b"}], "appears twice"),
        (["just a string"], "expected a Document or a mapping"),
    ],
)
def test_bad_input_is_rejected_and_nothing_stored_changes(make_retriever, corpus_docs, bad, message):
    r = make_retriever()
    r.ingest(corpus_docs)
    before = r.count()
    snapshot = [(h.doc_id, h.text) for h in r.search("capital", top_k=20, rerank=False)]
    with pytest.raises(InputError, match=message):
        r.ingest([{"doc_id": "fresh", "text": "a new valid document"}, *bad])
    assert r.count() == before
    assert [(h.doc_id, h.text) for h in r.search("capital", top_k=20, rerank=False)] == snapshot


def test_bad_queries_and_options(make_retriever, corpus_docs):
    from m3retriever import ConfigError

    r = make_retriever()
    r.ingest(corpus_docs)
    with pytest.raises(InputError, match="non-empty string"):
        r.search("")
    with pytest.raises(InputError):
        r.search("x", filter={"year": {"between": [1, 2]}})
    with pytest.raises(ConfigError, match="unknown search option"):
        r.search("x", nonsense=3)
    with pytest.raises(ConfigError, match="min_score"):
        r.search("x", rerank=False, min_score=0.5)


def test_empty_sparse_query_falls_back_to_dense(make_retriever, corpus_docs):
    r = make_retriever(bm25=True, sparse_encoder="none")
    r.ingest(corpus_docs)
    # stopwords only: the BM25 query vector is empty, so only the dense branch runs
    result = r.search("the and of", top_k=4, rerank=False)
    assert len(result) == 4
    assert all(h.scores.bm25 is None and h.scores.fused is None for h in result)
    assert all(h.scores.dense is not None for h in result)
    # a real term brings the BM25 branch back, with matched terms reported
    result = r.search("capital France", top_k=12, rerank=False)
    paris = next(h for h in result if h.doc_id == "paris")
    assert paris.scores.bm25 is not None and paris.scores.fused is not None
    assert {"capital", "france"} <= {t.lower() for t in paris.matched_terms}


def test_fingerprint_mismatch_is_a_clear_error(make_retriever, corpus_docs, tmp_path):
    loc = str(tmp_path / "fp")
    r = make_retriever(location=loc)
    r.ingest(corpus_docs[:2])
    r.close()
    with pytest.raises(FingerprintMismatchError, match="was built with other encoder settings: bm25"):
        make_retriever(location=loc, bm25=True)


def test_async_search_does_not_block_the_event_loop(make_retriever, corpus_docs):
    r = make_retriever()
    r.ingest(corpus_docs)

    async def main() -> tuple[int, list]:
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        results = await asyncio.gather(*(r.asearch(q, top_k=3) for q in QUERIES * 2))
        stop = True
        await t
        return ticks, results

    ticks, results = asyncio.run(main())
    assert all(len(res) == 3 for res in results)
    assert ticks > 3  # the loop kept running while searches ran in worker threads
    assert [h.doc_id for h in results[0]] == [h.doc_id for h in r.search(QUERIES[0], top_k=3)]


def test_search_batch_equals_single_searches(make_retriever, corpus_docs):
    r = make_retriever()
    r.ingest(corpus_docs)
    batch = r.search_batch(QUERIES, top_k=4)
    for q, res in zip(QUERIES, batch):
        single = r.search(q, top_k=4)
        assert [h.id for h in res] == [h.id for h in single]
        assert [h.scores.final for h in res] == pytest.approx([h.scores.final for h in single], rel=1e-5)


def test_search_is_deterministic(make_retriever, corpus_docs):
    r = make_retriever()
    r.ingest(corpus_docs)
    runs = [[(h.id, h.scores.final) for h in r.search("capital", top_k=12)] for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]


def test_search_on_empty_store_returns_nothing(make_retriever):
    r = make_retriever()
    assert len(r.search("anything")) == 0
    assert r.count() == 0
    assert r.info()["documents"] == 0


def test_info_reports_counts_and_models(make_retriever, corpus_docs, tiny_bge_m3_path):
    r = make_retriever()
    report = r.ingest(corpus_docs)
    info = r.info()
    assert info["documents"] == len(corpus_docs)
    assert info["points"] == report.chunks_written
    assert info["backend"] == "qdrant-edge"
    assert info["disk_bytes"] > 0
    assert info["encoders"]["dense"]["model"] == str(tiny_bge_m3_path)
    assert {"doc_id", "source", "content_hash", "chunk_index"} <= set(info["payload_indexes"])


def test_edge_and_memory_backends_rank_identically(make_retriever, corpus_docs):
    edge = make_retriever()
    mem = make_retriever(location=":memory:")
    for r in (edge, mem):
        r.ingest(corpus_docs)
    assert mem.info()["backend"] == "qdrant-client"
    for q in QUERIES:
        a, b = edge.search(q, top_k=8), mem.search(q, top_k=8)
        assert [h.id for h in a] == [h.id for h in b], q
        for x, y in zip(a, b):
            assert x.scores.fused == pytest.approx(y.scores.fused, rel=1e-4)
            assert x.scores.dense == pytest.approx(y.scores.dense, rel=1e-4)
            assert x.scores.rerank_logit == pytest.approx(y.scores.rerank_logit, rel=1e-4)


@pytest.mark.parametrize("distance", ["dot", "euclid", "manhattan"])
def test_dense_distance_is_configurable(make_retriever, corpus_docs, distance):
    r = make_retriever(distance=distance, sparse_encoder="none")
    r.ingest(corpus_docs)
    cosine = make_retriever(location=":memory:", sparse_encoder="none")
    cosine.ingest(corpus_docs)
    res = r.search("capital of France", top_k=12, rerank=False)
    ref = cosine.search("capital of France", top_k=12, rerank=False)
    scores = [h.scores.dense for h in res]
    # best first: similarities descend, distances ascend
    assert scores == (sorted(scores) if distance != "dot" else sorted(scores, reverse=True))
    if distance != "manhattan":  # on normalised vectors dot and euclid rank like cosine
        assert [h.doc_id for h in res] == [h.doc_id for h in ref]
    fingerprint = r.store.info(r.collection)["fingerprint"]
    assert fingerprint.get("distance") == distance
    r.close()
    other = "cosine" if distance != "cosine" else "dot"
    with pytest.raises(FingerprintMismatchError, match="distance"):  # asking for another is refused
        make_retriever(location=r.config.location, sparse_encoder="none", distance=other)
    # left unset, the collection's own distance applies
    assert make_retriever(location=r.config.location, sparse_encoder="none").settings.distance == distance


def test_encoder_output_of_the_wrong_dimension_is_refused(make_retriever, corpus_docs):
    from m3retriever.ingest import Ingestor

    r = make_retriever()
    r.ingest(corpus_docs[:3])
    before = r.count()
    wrong = Ingestor(r.store, r.collection, r.encoders, r._ingestor.chunking, dense_dim=r._spec.dense_dim + 1)
    with pytest.raises(InputError, match="nothing was written"):
        wrong.ingest(corpus_docs[3:])
    assert r.count() == before


def test_rerank_max_length_is_separate_from_the_encoders(make_retriever):
    r = make_retriever(rerank_max_length=32)
    assert r.reranker.spec.max_length == 32
    assert r.encoders.dense.spec.max_length == 128


def test_add_texts_ids_metadata_and_derived_ids(make_retriever):
    from m3retriever.ingest import text_id

    r = make_retriever()
    report = r.add_texts(
        ["Qdrant is a vector database written in Rust.", "BM25 is a lexical ranking function."],
        ids=["qdrant", "bm25"],
        metadatas=[{"topic": "db", "year": 2021}, {"topic": "ir", "year": 1994}],
        source="readme",
    )
    assert (report.documents, report.added) == (2, 2)
    hits = r.search("what is qdrant?", top_k=3, filter={"year": {"gte": 2000}}).hits
    assert [h.doc_id for h in hits] == ["qdrant"]
    assert hits[0].metadata == {"topic": "db", "year": 2021} and hits[0].source == "readme"
    # without ids, the id is derived from the text: adding it again changes nothing
    text = "Reciprocal rank fusion merges rankings."
    assert r.add_texts([text]).added == 1 and r.add_texts([text]).skipped == 1
    assert r.count({"doc_id": text_id(text)}) >= 1
    with pytest.raises(InputError, match="got 1 texts but 2 ids"):
        r.add_texts(["a"], ids=["a", "b"])


README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_readme_first_example_runs(tmp_path, monkeypatch, capsys):
    """README's "Use it" example, verbatim, with the real small models (in a fresh directory)."""
    code = re.search(r"## Use it\n\n```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert code, "README.md lost its first Python example"
    assert "r.add_texts(" in code.group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code.group(1), "README.md", "exec"), {})  # noqa: S102 - our own README
    lines = capsys.readouterr().out.splitlines()
    assert lines and lines[0].startswith("qdrant ")  # the only document from 2000 on
    assert (tmp_path / "data").is_dir()
