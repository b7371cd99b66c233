"""The late-interaction (ColBERT) stage: BGE-M3's multivectors stored in a MaxSim multivector
and used to rescore the fused candidates inside the Query API call, on both backends.

Parity is checked against FlagEmbedding itself (``colbert_vecs``, ``colbert_score``) on the tiny
random BGE-M3; random weights rank randomly, so nothing here asserts retrieval quality.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m3retriever import Eq, Retriever, load_config
from m3retriever.branches import EncoderSet
from m3retriever.components import get_encoder
from m3retriever.display import format_hits
from m3retriever.encoders.base import EncoderOptions
from m3retriever.encoders.bge_m3 import BGEM3Encoder
from m3retriever.errors import ConfigError, FingerprintMismatchError
from m3retriever.ingest import point_id
from m3retriever.store import open_store
from m3retriever.store.schema import (
    BM25,
    DENSE,
    MULTIVECTOR,
    SPARSE,
    Branch,
    CollectionSpec,
    HybridQuery,
    Rescore,
    StoredPoint,
)

QUERIES = ["capital of France", "loyal animals in the park", "vector database filters"]
BACKENDS = ["edge", "memory"]


@pytest.fixture(scope="module")
def reference(tiny_bge_m3_path: Path):  # type: ignore[no-untyped-def]
    """FlagEmbedding's own model, loaded independently of our cache."""
    from FlagEmbedding import BGEM3FlagModel

    return BGEM3FlagModel(str(tiny_bge_m3_path), use_fp16=False, devices="cpu")


def _open(tmp: Path, backend: str, tiny_settings: dict, **settings: Any) -> Retriever:
    location = str(tmp / "store") if backend == "edge" else ":memory:"
    return Retriever(load_config(env={}, location=location, **{**tiny_settings, **settings}))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_settings: dict, corpus_docs: list[dict]):  # type: ignore[no-untyped-def]
    """The corpus ingested with multivectors on, once per backend."""
    out = {}
    for backend in BACKENDS:
        r = _open(tmp_path_factory.mktemp(f"mv-{backend}"), backend, tiny_settings, multivector=True)
        r.ingest(corpus_docs)
        out[backend] = r
    yield out
    for r in out.values():
        r.close()


def _stored(r: Retriever) -> dict[str, tuple[str, np.ndarray]]:
    """Point id -> (chunk text, stored multivector)."""
    return {
        rec.id: (str(rec.payload["text"]), np.asarray(rec.vectors[MULTIVECTOR], dtype=np.float32))
        for rec in r.store.scroll(r.collection, with_vectors=True)
    }


def test_encoder_returns_flagembeddings_colbert_vecs(tiny_bge_m3_path: Path, reference) -> None:  # type: ignore[no-untyped-def]
    enc = BGEM3Encoder(EncoderOptions(model=str(tiny_bge_m3_path), device="cpu", batch_size=2, multivector=True))
    texts = ["The cat sat on the mat.", "Paris is the capital of France. " * 6, "x"]
    for ours, theirs in (
        (enc.encode_document(texts), reference.encode_corpus(texts, return_colbert_vecs=True)),
        (enc.encode_query(texts), reference.encode_queries(texts, return_colbert_vecs=True)),
    ):
        assert ours.multivector is not None and len(ours.multivector) == len(texts)
        for mine, their in zip(ours.multivector, theirs["colbert_vecs"]):
            assert mine.dtype == np.float32 and mine.shape == their.shape
            assert np.allclose(mine, their, atol=1e-5)
            assert np.allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)
    assert enc.spec.multivector_dim == ours.multivector[0].shape[1]
    plain = BGEM3Encoder(EncoderOptions(model=str(tiny_bge_m3_path), device="cpu", batch_size=2))
    assert plain.encode_document(texts).multivector is None  # computed only when asked for


@pytest.mark.parametrize("backend", BACKENDS)
def test_stored_multivectors_equal_flagembeddings(built, reference, backend: str) -> None:  # type: ignore[no-untyped-def]
    stored = _stored(built[backend])
    texts = [text for text, _ in stored.values()]
    theirs = reference.encode_corpus(texts, max_length=128, return_colbert_vecs=True)["colbert_vecs"]
    assert len(stored) == len(texts) > 0
    for (_, mine), their in zip(stored.values(), theirs):
        assert mine.shape == their.shape
        assert np.allclose(mine, their, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rescoring_score_is_flagembeddings_colbert_score(built, reference, backend: str) -> None:  # type: ignore[no-untyped-def]
    r = built[backend]
    stored = _stored(r)
    n = len(stored)
    for query in QUERIES:
        q_vecs = reference.encode_queries([query], max_length=128, return_colbert_vecs=True)["colbert_vecs"][0]
        result = r.search(query, top_k=n, rerank=False)
        assert len(result.hits) == n  # every chunk was a fused candidate (depth >= corpus)
        fused = {h.id: h.scores for h in r.search(query, top_k=n, rerank=False, multivector_rescore=False)}
        for rank, hit in enumerate(result.hits, 1):
            s = hit.scores
            expected = float(reference.colbert_score(q_vecs, stored[hit.id][1]))
            assert s.multivector == pytest.approx(expected, abs=1e-5)
            assert s.multivector_rank == rank and s.final == s.multivector
            # the fused stage is still reported, as a search without rescoring reports it
            assert (s.fused, s.fused_rank) == (fused[hit.id].fused, fused[hit.id].fused_rank)
            assert s.dense_rank == fused[hit.id].dense_rank and s.sparse_rank == fused[hit.id].sparse_rank
        scores = [h.scores.multivector for h in result.hits]
        assert scores == sorted(scores, reverse=True)
        assert all(f.multivector is None and f.multivector_rank is None for f in fused.values())


def test_the_multivector_is_maxsim_without_hnsw_on_disk_and_quantized(built) -> None:  # type: ignore[no-untyped-def]
    edge = built["edge"]
    config = json.loads((edge.store.path / edge.collection / "edge_config.json").read_text())["vectors"][MULTIVECTOR]  # type: ignore[attr-defined]
    assert config["multivector_config"] == {"comparator": "max_sim"} and config["distance"] == "Dot"
    assert config["hnsw_config"]["m"] == 0 and config["memory"] == "cold"
    assert config["quantization_config"]["scalar"]["type"] == "int8"
    memory = built["memory"]
    params = memory.store.client.get_collection(memory.collection).config.params.vectors[MULTIVECTOR]  # type: ignore[attr-defined]
    assert params.multivector_config.comparator == "max_sim" and params.distance == "Dot"
    assert params.hnsw_config.m == 0 and params.on_disk is True
    assert params.quantization_config.scalar.type == "int8"


def test_both_backends_give_the_same_order_and_scores(built) -> None:  # type: ignore[no-untyped-def]
    for query in QUERIES:
        edge, memory = (built[b].search(query, top_k=8) for b in BACKENDS)
        assert [h.id for h in edge] == [h.id for h in memory]
        for a, b in zip(edge, memory):
            for name in ("multivector", "fused", "rerank_logit", "final"):
                assert getattr(a.scores, name) == pytest.approx(getattr(b.scores, name), abs=1e-5)
            assert a.scores.multivector_rank == b.scores.multivector_rank


def test_reranker_reads_the_rescored_candidates_and_display_shows_them(built) -> None:  # type: ignore[no-untyped-def]
    r = built["edge"]
    result = r.search("capital of France", top_k=3, rerank_depth=4, multivector_depth=4)
    assert len(result.hits) == 3
    # the cross-encoder scored the 4 best by MaxSim, not the 4 best fused
    assert all(h.scores.multivector_rank is not None and h.scores.multivector_rank <= 4 for h in result.hits)
    assert all(h.scores.rerank is not None for h in result.hits)
    table = format_hits(result)
    assert "colbert" in table.splitlines()[0]
    assert "colbert" not in format_hits(r.search("capital of France", top_k=3, multivector_rescore=False))


@pytest.mark.parametrize("backend", BACKENDS)
def test_rescoring_keeps_the_filter_and_a_lone_branch(built, reference, backend: str) -> None:  # type: ignore[no-untyped-def]
    r = built[backend]
    hits = r.search("capital", filter={"lang": "de"}, rerank=False).hits
    assert [h.doc_id for h in hits] == ["berlin"] and hits[0].scores.multivector is not None
    # sparse weight 0 drops the sparse branch: the dense branch's candidates are rescored
    lone = r.search("capital of France", top_k=4, rerank=False, sparse_weight=0.0).hits
    assert all(h.scores.fused is None and h.scores.dense_rank is not None for h in lone)
    stored = _stored(r)
    q_vecs = reference.encode_queries(["capital of France"], max_length=128, return_colbert_vecs=True)["colbert_vecs"][0]
    for h in lone:
        assert h.scores.multivector == pytest.approx(float(reference.colbert_score(q_vecs, stored[h.id][1])), abs=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_switch_off_leaves_the_collection_as_before(tmp_path: Path, tiny_settings: dict, corpus_docs, backend: str) -> None:  # type: ignore[no-untyped-def]
    with _open(tmp_path, backend, tiny_settings) as r:
        r.ingest(corpus_docs[:3])
        assert r.settings.multivector is False and r.settings.search.multivector_rescore is False
        spec = r.encoders.dense.spec  # type: ignore[union-attr]
        # the fingerprint as it was before the multivector existed: three branches, nothing more
        fingerprint = {k: v for k, v in r.store.collection_fingerprint(r.collection).items() if k != "chunk_headers"}
        assert fingerprint == {DENSE: spec.fingerprint(), SPARSE: spec.fingerprint(), BM25: None}
        assert all(MULTIVECTOR not in rec.vectors for rec in r.store.scroll(r.collection, with_vectors=True))
        assert all(h.scores.multivector is None for h in r.search("capital"))
        with pytest.raises(ConfigError, match="re-ingest"):
            r.search("capital", multivector_rescore=True)
        if backend == "memory":
            assert MULTIVECTOR not in r.store.client.get_collection(r.collection).config.params.vectors  # type: ignore[attr-defined]
        else:
            shard_config = json.loads((tmp_path / "store" / r.collection / "edge_config.json").read_text())
            assert MULTIVECTOR not in json.dumps(shard_config)


def test_switching_an_existing_collection_needs_a_reingest(tmp_path: Path, tiny_settings: dict, corpus_docs) -> None:  # type: ignore[no-untyped-def]
    with _open(tmp_path, "edge", tiny_settings) as r:
        r.ingest(corpus_docs[:2])
    with pytest.raises(ConfigError, match="re-ingest"):
        _open(tmp_path, "edge", tiny_settings, search={"multivector_rescore": True})
    with pytest.raises(FingerprintMismatchError, match="re-ingest") as err:
        _open(tmp_path, "edge", tiny_settings, multivector=True)
    assert "colbert" in str(err.value)
    other = tmp_path / "other"
    with _open(other, "edge", tiny_settings, multivector=True) as r:
        r.ingest(corpus_docs[:2])
    # unset, the switch follows the collection: on here, so rescoring is on by default
    with _open(other, "edge", tiny_settings) as r:
        assert r.settings.multivector is True and r.settings.search.multivector_rescore is True
        assert r.search("capital", rerank=False).hits[0].scores.multivector is not None
    with pytest.raises(FingerprintMismatchError, match="multivector"):
        _open(other, "edge", tiny_settings, multivector=False)


def test_renormalize_keeps_the_multivectors(tmp_path: Path, tiny_settings: dict, corpus_docs) -> None:  # type: ignore[no-untyped-def]
    from m3retriever import renormalize

    with _open(tmp_path, "edge", tiny_settings, multivector=True, bm25=True, lexical_encoder="bm25") as r:
        r.ingest(corpus_docs[:4])
        before = _stored(r)
        assert renormalize(r.opened).chunks == len(before)
        after = _stored(r)
        assert before.keys() == after.keys()
        assert all(np.array_equal(before[k][1], after[k][1]) for k in before)


def test_evaluation_has_a_multivector_stage(built) -> None:  # type: ignore[no-untyped-def]
    from m3retriever.evaluation.runner import available_stages, hits_to_ranking, stage_runs

    r = built["edge"]
    assert available_stages(r) == ["dense", "sparse", "fused", "multivector", "rerank"]
    runs, _ = stage_runs(r, {"q1": QUERIES[0]}, ["fused", "multivector"], depth=20)
    for stage, rescore in (("fused", False), ("multivector", True)):
        expected = hits_to_ranking(r.search(QUERIES[0], top_k=20, rerank=False, multivector_rescore=rescore))
        assert sorted(runs[stage]["q1"], key=lambda d: -runs[stage]["q1"][d]) == expected


def test_an_encoder_without_multivectors_is_refused_by_name() -> None:
    bm25 = get_encoder("bm25")
    with pytest.raises(ConfigError, match="'bm25' produces none"):
        EncoderSet(None, bm25, None, multivector=True)


def test_mcp_search_carries_the_multivector_score(built) -> None:  # type: ignore[no-untyped-def]
    from mcp import Client

    from m3retriever_mcp import create_server

    adapter = create_server(built["edge"])

    async def call() -> Any:
        with anyio.fail_after(60):
            async with Client(adapter.server) as client:
                return await client.call_tool("search", {"query": "capital of France", "top_k": 3})

    result = anyio.run(call)
    assert not result.is_error
    hits = result.structured_content["hits"]
    assert all(isinstance(h["scores"]["multivector"], float) and h["scores"]["multivector_rank"] >= 1 for h in hits)
    assert "multivector=" in result.content[0].text


DIM = 8
rows = st.integers(1, 5).flatmap(
    lambda n: st.lists(st.lists(st.floats(-1, 1, width=32), min_size=DIM, max_size=DIM), min_size=n, max_size=n)
)


SPEC = CollectionSpec(name="mv", dense_dim=2, sparse=False, multivector_dim=DIM, fingerprint={"t": 1})


@pytest.fixture(scope="module")
def two_stores(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """An Edge store and a qdrant-client ``:memory:`` store with one multivector collection;
    each example writes its own points (metadata ``ex``) and queries only them."""
    stores = [open_store(str(tmp_path_factory.mktemp("mv-edge"))), open_store(":memory:")]
    for store in stores:
        store.ensure_collection(SPEC)
    yield stores, itertools.count()
    for store in stores:
        store.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(rows, min_size=1, max_size=6), query=rows)
def test_engine_maxsim_is_the_sum_of_best_dot_products(two_stores, docs, query) -> None:  # type: ignore[no-untyped-def]
    """Through both backends, whatever the shapes: score = sum over query rows of the best dot
    product with a document row, and the same on both."""
    stores, examples = two_stores
    ex = next(examples)
    rng = np.random.default_rng(ex)
    points = [
        StoredPoint(id=point_id(f"ex{ex}", i), payload={"metadata": {"ex": ex}}, dense=rng.normal(size=2).tolist(), multivector=d)
        for i, d in enumerate(docs)
    ]
    hq = HybridQuery(
        branches=(Branch(DENSE, [1.0, 0.0], limit=10),), limit=10, filter=Eq("ex", ex), late_interaction=Rescore(query, candidates=10)
    )
    q = np.asarray(query, dtype=np.float32)
    expected = {p.id: float((q @ np.asarray(p.multivector, dtype=np.float32).T).max(axis=1).sum()) for p in points}
    got = []
    for store in stores:
        store.upsert("mv", points)
        records = store.query("mv", [hq])[0]
        assert {r.id for r in records} == set(expected)
        for rec in records:
            assert rec.score == pytest.approx(expected[rec.id], abs=1e-4)
        got.append({rec.id: rec.score for rec in records})
    assert got[0] == pytest.approx(got[1], abs=1e-5)
