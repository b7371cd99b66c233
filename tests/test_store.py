"""The store layer: the same fixtures through Qdrant Edge and qdrant-client's ``:memory:`` mode
must give the same rankings; filters, counts, deletes and fingerprints behave the same."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from m3retriever import AnyOf, Eq, Not, Range
from m3retriever.errors import FingerprintMismatchError, StoreError
from m3retriever.ingest import point_id
from m3retriever.store import open_store
from m3retriever.store.schema import BM25, DENSE, SPARSE, Branch, CollectionSpec, HybridQuery, Store, StoredPoint
from m3retriever.store.translate import Translator
from m3retriever.types import SparseVector

DIM = 16
N = 300


def _points(seed: int = 0) -> list[StoredPoint]:
    rng = np.random.default_rng(seed)
    pts = []
    for i in range(N):
        dense = rng.normal(size=DIM)
        dense /= np.linalg.norm(dense)
        idx = sorted(rng.choice(200, size=8, replace=False).tolist())
        sparse = SparseVector(tuple(idx), tuple(float(v) for v in rng.uniform(0.1, 2.0, size=8)))
        bm_idx = sorted(rng.choice(50, size=4, replace=False).tolist())
        # distinct term weights: tied scores would make any two engines' orders differ
        bm25 = SparseVector(tuple(bm_idx), tuple(float(v) for v in rng.uniform(0.5, 1.5, size=4)))
        pts.append(
            StoredPoint(
                id=point_id(f"doc{i}", 0),
                payload={
                    "doc_id": f"doc{i}",
                    "chunk_index": 0,
                    "text": f"text {i}",
                    "source": "synthetic",
                    "metadata": {"group": f"g{i % 5}", "n": i},
                    "content_hash": "x",
                },
                dense=dense.tolist(),
                sparse=sparse,
                bm25=bm25,
            )
        )
    return pts


SPEC = CollectionSpec(name="c", dense_dim=DIM, distance="cosine", sparse=True, bm25=True, fingerprint={"model": "synthetic"})


@pytest.fixture(params=["edge", "memory"])
def store(request, tmp_path):
    s = open_store(str(tmp_path / "edge") if request.param == "edge" else ":memory:")
    s.ensure_collection(SPEC)
    s.upsert("c", _points())
    yield s
    s.close()


@pytest.fixture
def both(tmp_path):
    edge = open_store(str(tmp_path / "edge2"))
    mem = open_store(":memory:")
    for s in (edge, mem):
        s.ensure_collection(SPEC)
        s.upsert("c", _points())
    yield edge, mem
    edge.close()
    mem.close()


def _queries(seed: int = 1) -> list[HybridQuery]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(10):
        d = rng.normal(size=DIM)
        d /= np.linalg.norm(d)
        idx = sorted(rng.choice(200, size=5, replace=False).tolist())
        sp = SparseVector(tuple(idx), tuple(float(v) for v in rng.uniform(0.5, 1.5, size=5)))
        bm = SparseVector(tuple(sorted(rng.choice(50, size=3, replace=False).tolist())), (1.0, 1.0, 1.0))
        branches = (Branch(DENSE, d.tolist(), 50), Branch(SPARSE, sp, 50), Branch(BM25, bm, 50))
        out.append(HybridQuery(branches=branches, limit=20, rrf_k=60, exact=True))
        out.append(HybridQuery(branches=branches[:1], limit=20, exact=True))
        out.append(HybridQuery(branches=branches[1:2], limit=20))
        out.append(HybridQuery(branches=branches[2:], limit=20))  # BM25 with the engine's IDF
        out.append(HybridQuery(branches=branches, limit=20, filter=Eq("group", "g1"), exact=True))
        weighted = tuple(Branch(b.name, b.vector, b.limit, w) for b, w in zip(branches, (2.0, 1.0, 0.5)))
        out.append(HybridQuery(branches=weighted, limit=20, exact=True))
    return out


def _ranking(records):
    """Ids in rank order. Ties are ordered by point id (the retriever's rule); points tied
    with the last one are left out, since which of them make the cut is the engine's choice."""
    ranked = sorted(records, key=lambda r: (-round(r.score, 5), r.id))
    cutoff = round(ranked[-1].score, 5)
    return [r.id for r in ranked if round(r.score, 5) > cutoff]


def test_edge_and_qdrant_client_give_the_same_rankings(both):
    edge, mem = both
    queries = _queries()
    for q, a, b in zip(queries, edge.query("c", queries), mem.query("c", queries)):
        assert len(a) == len(b) == 20
        ranked = _ranking(a)
        assert ranked == _ranking(b), q
        scores_a = {r.id: r.score for r in a}
        scores_b = {r.id: r.score for r in b}
        assert [scores_a[i] for i in ranked] == pytest.approx([scores_b[i] for i in ranked], rel=1e-4, abs=1e-6)
        payloads_b = {r.id: r.payload for r in b}
        assert all(r.payload == payloads_b[r.id] for r in a if r.id in ranked), q


def test_reads_are_congruent_ids_payloads_and_vectors(both):
    """retrieve, scroll (with vectors), count and count_by_value give the same points on both."""
    edge, mem = both
    stored = {p.id: p for p in _points()}
    ids = [point_id(f"doc{i}", 0) for i in (3, 1, 4, 1, 5)] + [point_id("missing", 0)]
    a, b = edge.retrieve("c", ids), mem.retrieve("c", ids)
    assert sorted((r.id, r.score, dict(r.payload)) for r in a) == sorted((r.id, r.score, dict(r.payload)) for r in b)
    assert sorted(r.id for r in a) == sorted(set(ids[:-1]))  # a repeated id comes back once
    flt = Eq("group", "g3") & Range("n", lt=150)
    scrolled = {}
    for s in (edge, mem):
        got = {r.id: r for r in s.scroll("c", flt, with_vectors=True, batch=7)}
        scrolled[s] = got
        assert set(got) == {i for i, p in stored.items() if p.payload["metadata"]["group"] == "g3" and p.payload["metadata"]["n"] < 150}
        assert s.count("c", flt) == len(got)
        for i, r in got.items():
            assert r.payload == stored[i].payload
            assert r.vectors[DENSE] == pytest.approx(stored[i].dense, abs=1e-6)
            for name, want in ((SPARSE, stored[i].sparse), (BM25, stored[i].bm25)):
                assert r.vectors[name].indices == want.indices
                assert r.vectors[name].values == pytest.approx(want.values, rel=1e-6)
    assert scrolled[edge].keys() == scrolled[mem].keys()
    values = ["doc7", "doc8", "missing", "doc7"]
    assert edge.count_by_value("c", "doc_id", values) == mem.count_by_value("c", "doc_id", values)


def test_count_by_value_counts_every_point_per_value(store):
    extra = [
        StoredPoint(id=point_id("doc1", k), payload={"doc_id": "doc1", "chunk_index": k, "metadata": {"tags": ["a", "b", "a"]}})
        for k in (1, 2)
    ]
    store.upsert("c", extra)
    values = ["doc1", "doc2", "missing", "doc1"]
    want = {"doc1": 3, "doc2": 1, "missing": 0}
    assert store.count_by_value("c", "doc_id", values) == want
    assert Store.count_by_value(store, "c", "doc_id", values) == want  # the default implementation
    assert store.count_by_value("c", "group", ["g0", "g1", "x"]) == {"g0": N // 5, "g1": N // 5, "x": 0}
    assert store.count_by_value("c", "tags", ["a", "b", "c"]) == {"a": 2, "b": 2, "c": 0}  # a list counts once per point
    assert store.count_by_value("c", "doc_id", []) == {}


def test_dense_scores_are_cosine_similarities(store):
    q = _queries()[1]
    stored = {p.id: np.array(p.dense) for p in _points()}
    qv = np.array(q.branches[0].vector)
    for rec in store.query("c", [q])[0]:
        assert rec.score == pytest.approx(float(stored[rec.id] @ qv), abs=1e-4)


def test_sparse_scores_are_dot_products(store):
    q = _queries()[2]
    stored = {p.id: p.sparse.as_dict() for p in _points()}
    qv = q.branches[0].vector.as_dict()
    for rec in store.query("c", [q])[0]:
        expected = sum(w * stored[rec.id].get(i, 0.0) for i, w in qv.items())
        assert rec.score == pytest.approx(expected, rel=1e-4)


def test_filters_translate_identically(store):
    cases = [
        (Eq("group", "g2"), lambda m: m["group"] == "g2"),
        (AnyOf("group", ["g0", "g3"]), lambda m: m["group"] in {"g0", "g3"}),
        (Range("n", gte=10, lt=20), lambda m: 10 <= m["n"] < 20),
        (Not(Eq("group", "g2")), lambda m: m["group"] != "g2"),
        (Eq("group", "g1") & Range("n", gt=200), lambda m: m["group"] == "g1" and m["n"] > 200),
    ]
    metas = {p.id: p.payload["metadata"] for p in _points()}
    for flt, pred in cases:
        expected = {i for i, m in metas.items() if pred(m)}
        assert store.count("c", flt) == len(expected)
        assert {r.id for r in store.scroll("c", flt)} == expected
        hits = store.query("c", [HybridQuery(branches=_queries()[0].branches[:1], limit=N, filter=flt, exact=True)])[0]
        assert {r.id for r in hits} == expected


def test_count_retrieve_delete(store):
    assert store.count("c") == N
    ids = [point_id("doc1", 0), point_id("doc2", 0), point_id("missing", 0)]
    got = store.retrieve("c", ids)
    assert {r.id for r in got} == set(ids[:2])
    assert {r.payload["doc_id"] for r in got} == {"doc1", "doc2"}
    store.delete_ids("c", ids[:1])
    assert store.count("c") == N - 1
    store.delete_by_filter("c", Eq("group", "g4"))
    assert store.count("c") == N - 1 - N // 5
    assert store.count("c", Eq("group", "g4")) == 0


def test_fused_hits_return_requested_sparse_vectors(store):
    q = _queries()[0]
    q = HybridQuery(branches=q.branches, limit=5, with_vectors=(SPARSE,), exact=True)
    stored = {p.id: p.sparse for p in _points()}
    for rec in store.query("c", [q])[0]:
        got = rec.vectors[SPARSE]
        assert got.indices == stored[rec.id].indices
        assert got.values == pytest.approx(stored[rec.id].values, rel=1e-6)  # stored as float32


def test_dbsf_fusion_runs(store):
    q = _queries()[0]
    dbsf = HybridQuery(branches=q.branches, limit=10, fusion="dbsf", exact=True)
    res = store.query("c", [dbsf])[0]
    assert len(res) == 10
    assert [r.score for r in res] == sorted([r.score for r in res], reverse=True)


def test_fingerprint_recorded_and_checked(store):
    assert dict(store.collection_fingerprint("c")) == {"model": "synthetic"}
    store.ensure_collection(SPEC)  # same fingerprint: fine
    other = CollectionSpec(name="c", dense_dim=DIM, fingerprint={"model": "another"})
    with pytest.raises(FingerprintMismatchError, match="another"):
        store.ensure_collection(other)


def test_payload_indexes_exist(store):
    info = store.info("c")
    if info["backend"] == "qdrant-edge":  # qdrant-client's local mode keeps no payload indexes
        assert {"doc_id", "source", "content_hash", "chunk_index"} <= set(info["payload_indexes"])
    assert info["points"] == N


def test_distances_are_configurable(tmp_path):
    for distance in ("cosine", "dot", "euclid", "manhattan"):
        for loc in (str(tmp_path / distance), ":memory:"):
            s = open_store(loc)
            spec = CollectionSpec(name="d", dense_dim=2, distance=distance, sparse=False, fingerprint={"d": distance})
            s.ensure_collection(spec)
            s.upsert("d", [StoredPoint(id=point_id("a", 0), payload={"doc_id": "a"}, dense=[1.0, 0.0]),
                           StoredPoint(id=point_id("b", 0), payload={"doc_id": "b"}, dense=[0.0, 3.0])])
            res = s.query("d", [HybridQuery(branches=(Branch(DENSE, [1.0, 0.0], 10),), limit=2, exact=True)])[0]
            assert res[0].payload["doc_id"] == "a", distance
            s.close()


def test_edge_optimize_builds_hnsw_and_keeps_results(tmp_path):
    s = open_store(str(tmp_path / "opt"))
    spec = CollectionSpec(name="c", dense_dim=DIM, sparse=True, bm25=True, fingerprint={}, full_scan_threshold_kb=1)
    s.ensure_collection(spec)
    s.upsert("c", _points())
    q = _queries()[1]
    before = [r.id for r in s.query("c", [HybridQuery(branches=q.branches, limit=10, exact=True)])[0]]
    s.optimize("c")
    approx = [r.id for r in s.query("c", [HybridQuery(branches=q.branches, limit=10, hnsw_ef=256)])[0]]
    assert len(set(before) & set(approx)) >= 9
    assert s.info("c")["points"] == N
    s.close()


def test_missing_collection_is_a_clear_error(tmp_path):
    s = open_store(str(tmp_path / "none"))
    with pytest.raises(StoreError, match="no collection .nope. at"):
        s.count("nope")
    s.close()


class _RecordingKit:
    """A model kit that returns what it was asked to build, to check the translation's shape."""

    sparse_type = tuple

    def __getattr__(self, name):
        return lambda *args: (name, *args)


def test_translation_builds_single_fused_weighted_and_dbsf_requests():
    tr = Translator(_RecordingKit())
    sp = SparseVector((1, 5), (0.5, 2.0))
    dense, sparse = Branch(DENSE, [1, 0], 30), Branch(SPARSE, sp, 40)
    flt = Eq("group", "g1")
    single = tr.request(HybridQuery(branches=(dense,), limit=5, filter=flt, hnsw_ef=128, with_vectors=(SPARSE,)))
    assert single == (
        "nearest_request", [1.0, 0.0], DENSE, 5, tr.filter(flt), ("search_params", 128, False, None), [SPARSE]
    )
    fused = tr.request(HybridQuery(branches=(dense, sparse), limit=7, rrf_k=2, filter=flt, exact=True))
    name, prefetches, fusion, limit, with_vector = fused
    assert (name, fusion, limit, with_vector) == ("fused_request", ("rrf", 2, None), 7, False)
    assert prefetches == [
        ("prefetch", [1.0, 0.0], DENSE, 30, tr.filter(flt), ("search_params", None, True, None)),
        ("prefetch", ("sparse_vector", [1, 5], [0.5, 2.0]), SPARSE, 40, tr.filter(flt), ("search_params", None, True, None)),
    ]
    quantized = tr.request(HybridQuery(branches=(dense,), limit=5, rescore=True, oversampling=3.0))
    assert quantized[5] == ("search_params", None, False, ("quantization_search", True, 3.0))
    weighted = tr.request(HybridQuery(branches=(dense, Branch(SPARSE, sp, 40, 0.5)), limit=7))
    assert weighted[2] == ("rrf", 60, [1.0, 0.5])
    assert tr.request(HybridQuery(branches=(dense, sparse), limit=7, fusion="dbsf"))[2] == ("dbsf",)


def test_translation_of_collection_points_and_records():
    tr = Translator(_RecordingKit())
    spec = CollectionSpec(name="x", dense_dim=4, distance="dot", sparse=True, sparse_idf=True, bm25=True, indexed_fields=("lang", "doc_id"))
    models = tr.collection(spec)
    assert models.vectors == {DENSE: ("vector_params", 4, "dot", False)}
    assert models.sparse == {SPARSE: ("sparse_params", True, False), BM25: ("sparse_params", True, False)}
    assert models.hnsw == ("hnsw_config", 16, 128, 10_000)
    assert (models.quantization, models.payload_on_disk) == (None, False)
    planned = tr.collection(replace(spec, quantization="binary", vectors_on_disk=True, payload_on_disk=True, hnsw_m=32))
    assert planned.vectors == {DENSE: ("vector_params", 4, "dot", True)}
    assert planned.sparse[BM25] == ("sparse_params", True, True)
    assert (planned.quantization, planned.payload_on_disk, planned.hnsw[1]) == (("quantization", "binary"), True, 32)
    assert [f for f, _ in models.indexes] == [
        "doc_id", "source", "content_hash", "metadata.folders", "metadata.suffix", "metadata.lang", "doc_id", "chunk_index"
    ]
    assert models.indexes[-1][1] == ("index_type", "integer")
    assert tr.collection(CollectionSpec(name="y", dense_dim=None, sparse=False)).vectors == {}
    [point] = tr.points([StoredPoint(id="i", payload={"a": 1}, dense=[1, 2], bm25=SparseVector((3,), (1.0,)))])
    assert point == ("point", "i", {DENSE: [1.0, 2.0], BM25: ("sparse_vector", [3], [1.0])}, {"a": 1})

    class Native:
        id, payload, score = "i", {"a": 1}, 0.5
        vector = {DENSE: [1.0], SPARSE: type("S", (tuple,), {"indices": (2,), "values": (0.25,)})()}

    rec = tr.record(Native())
    assert (rec.id, rec.score, rec.payload) == ("i", 0.5, {"a": 1})
    assert rec.vectors == {DENSE: [1.0], SPARSE: SparseVector((2,), (0.25,))}
