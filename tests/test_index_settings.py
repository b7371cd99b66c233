"""Index settings (quantization, on-disk vectors and payloads, HNSW shape) on both backends:
they reach the engine, quantized search with rescoring finds what unquantized search finds,
Edge and qdrant-client agree, existing collections keep their own settings, and a request for
other settings on an existing collection is a clear error."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m3retriever import Config, ConfigError, load_config
from m3retriever.config.resolution import resolve
from m3retriever.config.sizing import auto_index_settings
from m3retriever.filters import Eq, Filter
from m3retriever.ingest import point_id
from m3retriever.store import open_store
from m3retriever.store.index_settings import LEGACY_INDEX_SETTINGS, check_index_settings
from m3retriever.store.schema import DENSE, SPARSE, Branch, CollectionSpec, HybridQuery, StoredPoint
from m3retriever.types import SparseVector

DIM = 128
N = 400
PLANS = [
    {},
    {"quantization": "scalar", "vectors_on_disk": True, "payload_on_disk": True},
    {"quantization": "binary", "vectors_on_disk": True},
    {"quantization": "turbo", "payload_on_disk": True, "hnsw_m": 8, "hnsw_ef_construct": 32},
    {"quantization": "scalar", "hnsw_m": 32},
]


def _data(seed: int = 0) -> tuple[np.ndarray, list[SparseVector]]:
    """Clustered unit vectors (16 centres) and sparse vectors over a small vocabulary."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((16, DIM))
    x = centers[rng.integers(0, 16, N)] + 0.8 * rng.standard_normal((N, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sparse = []
    for _ in range(N):
        ids = np.unique(rng.integers(0, 200, 8))
        sparse.append(SparseVector(tuple(int(i) for i in ids), tuple(float(v) for v in rng.random(len(ids)) + 0.1)))
    return x.astype(np.float32), sparse


def _load(location: str, plan: dict[str, Any], x: np.ndarray, sparse: list[SparseVector]) -> Any:
    store = open_store(location)
    store.ensure_collection(CollectionSpec(name="c", dense_dim=DIM, sparse=True, fingerprint={"t": 1}, **plan))
    store.upsert(
        "c",
        [
            StoredPoint(
                id=point_id(f"d{i}", 0),
                payload={"doc_id": f"d{i}", "chunk_index": 0, "metadata": {"g": i % 3}},
                dense=x[i],
                sparse=sparse[i],
            )
            for i in range(N)
        ],
    )
    store.optimize("c")
    return store


def _truth(x: np.ndarray, q: np.ndarray, k: int, keep: np.ndarray | None = None) -> set[str]:
    scores = x @ q
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    return {point_id(f"d{i}", 0) for i in np.argsort(-scores)[:k]}


@pytest.mark.parametrize("plan", PLANS[1:], ids=lambda p: p["quantization"] + str(len(p)))
def test_settings_reach_both_engines(tmp_path, plan):
    x, sparse = _data()
    for location in (str(tmp_path / "edge"), ":memory:"):
        store = _load(location, plan, x, sparse)
        assert store.index_settings("c") == {**LEGACY_INDEX_SETTINGS, **plan}
        assert store.info("c")["index"] == store.index_settings("c")
        store.close()
    reopened = open_store(str(tmp_path / "edge"))
    assert reopened.info("c")["index"] == {**LEGACY_INDEX_SETTINGS, **plan}  # Edge rewrites its config on load
    reopened.close()
    # The engine's own records: Edge's shard config, and qdrant-client's collection config.
    engine = json.loads((tmp_path / "edge" / "c" / "edge_config.json").read_text())
    assert next(iter(engine["quantization_config"])) == plan["quantization"]
    assert engine["quantization_config"][plan["quantization"]]["always_ram"] is True
    assert bool(engine["vectors"]["dense"].get("on_disk")) == plan.get("vectors_on_disk", False)
    assert bool(engine["sparse_vectors"]["sparse"].get("on_disk")) == plan.get("vectors_on_disk", False)
    assert bool(engine.get("on_disk_payload")) == plan.get("payload_on_disk", False)
    assert engine["hnsw_config"]["m"] == plan.get("hnsw_m", 16)
    client = open_store(":memory:")
    client.ensure_collection(CollectionSpec(name="c", dense_dim=DIM, sparse=True, **plan))
    params = client.client.get_collection("c").config.params  # type: ignore[attr-defined]
    assert bool(params.vectors[DENSE].on_disk) == plan.get("vectors_on_disk", False)
    index = params.sparse_vectors[SPARSE].index
    assert bool(index and index.on_disk) == plan.get("vectors_on_disk", False)
    client.close()


def test_a_collection_without_settings_reads_back_the_old_defaults(tmp_path):
    for location in (str(tmp_path / "edge"), ":memory:"):
        store = open_store(location)
        store.ensure_collection(CollectionSpec(name="c", dense_dim=4, sparse=False))
        assert store.index_settings("c") == dict(LEGACY_INDEX_SETTINGS)
        store.close()
    reopened = open_store(str(tmp_path / "edge"))  # loading the shard again keeps them
    assert reopened.info("c")["index"] == dict(LEGACY_INDEX_SETTINGS)
    reopened.close()
    engine = json.loads((tmp_path / "edge" / "c" / "edge_config.json").read_text())
    assert "quantization_config" not in engine and engine["on_disk_payload"] is False
    segments = [json.loads(f.read_text()) for f in (tmp_path / "edge" / "c" / "segments").glob("*/segment.json")]
    assert segments and all(seg["config"]["payload_storage_type"]["type"] == "in_ram_mmap" for seg in segments)  # not "mmap"


@pytest.mark.parametrize("quantization", ["scalar", "turbo", "binary"])
def test_quantized_search_with_rescoring_finds_the_exact_top_ids_on_both(tmp_path, quantization):
    x, sparse = _data(1)
    plan = {"quantization": quantization, "vectors_on_disk": True}
    stores = [_load(str(tmp_path / "edge"), plan, x, sparse), _load(":memory:", plan, x, sparse)]
    rng = np.random.default_rng(5)
    oversampling = 8.0 if quantization == "binary" else 3.0
    for _ in range(10):
        q = x[rng.integers(0, N)] + 0.3 * rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM)
        hq = HybridQuery(branches=(Branch(DENSE, q.tolist(), 10),), limit=10, rescore=True, oversampling=oversampling)
        truth = _truth(x, q / np.linalg.norm(q), 10)
        for store in stores:
            assert {r.id for r in store.query("c", [hq])[0]} == truth
    for store in stores:
        store.close()


_OPEN: dict[int, list[Any]] = {}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Per plan (by index), an Edge store and a qdrant-client store holding the same data."""
    x, sparse = _data(2)
    root = tmp_path_factory.mktemp("plans")

    def get(i: int) -> list[Any]:
        if i not in _OPEN:
            _OPEN[i] = [_load(str(root / f"edge{i}"), PLANS[i], x, sparse), _load(":memory:", PLANS[i], x, sparse)]
        return _OPEN[i]

    yield x, sparse, get
    for stores in _OPEN.values():
        for store in stores:
            store.close()
    _OPEN.clear()


def _ranked(records: list[Any]) -> tuple[list[float], set[str]]:
    """Scores (rounded) and the ids ranked above the last score (ties at the cut may differ)."""
    scores = [round(r.score, 5) for r in records]
    return scores, {r.id for r in records if round(r.score, 5) > scores[-1]}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    plan=st.integers(0, len(PLANS) - 1),
    group=st.none() | st.integers(0, 2),
    row=st.integers(0, N - 1),
    fusion=st.sampled_from(["rrf", "dbsf"]),
)
def test_edge_and_client_agree_under_every_plan(loaded, plan, group, row, fusion):
    """Hybrid queries (dense + sparse, a filter or none) rank the same on both backends under
    every plan (quantized ones rescored), and the dense branch finds the exact ids."""
    x, sparse, get = loaded
    flt: Filter | None = None if group is None else Eq("g", group)
    keep = None if group is None else np.arange(N) % 3 == group
    knobs: dict[str, Any] = {"rescore": True, "oversampling": 8.0} if PLANS[plan].get("quantization") else {}
    q = x[row].tolist()
    dense = HybridQuery(branches=(Branch(DENSE, q, 10),), limit=10, filter=flt, **knobs)
    both = HybridQuery(
        branches=(Branch(DENSE, q, 20), Branch(SPARSE, sparse[row], 20)), limit=10, fusion=fusion, filter=flt, **knobs
    )
    edge, client = (store.query("c", [dense, both]) for store in get(plan))
    truth = _truth(x, x[row], 10, keep)
    assert {r.id for r in client[0]} == truth  # qdrant-client's local mode searches exactly
    if PLANS[plan].get("quantization") == "binary":
        # One bit per dimension: rescoring recovers most, not all, of the exact top 10.
        assert len({r.id for r in edge[0]} & truth) >= 7
        return
    assert {r.id for r in edge[0]} == truth
    (e_scores, e_ids), (c_scores, c_ids) = _ranked(edge[1]), _ranked(client[1])
    assert e_scores == pytest.approx(c_scores, abs=1e-4)
    assert e_ids == c_ids


def test_bad_values_are_config_errors():
    for bad in ({"quantization": "int4"}, {"hnsw_m": 2}, {"hnsw_ef_construct": 10**6}, {"expected_chunks": 0}, {"payload_on_disk": "yes"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Config(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="quantization"):
        load_config(env={"M3R_QUANTIZATION": "pq"})
    for bad_search in ({"oversampling": 0.5}, {"oversampling": float("nan")}, {"rescore": "x"}):
        with pytest.raises(ConfigError, match=next(iter(bad_search))):
            load_config(env={}, search=bad_search)


def test_defaults_by_expected_size():
    assert resolve(Config()).quantization == "none"  # unknown size: as before
    small = resolve(Config(expected_chunks=100_000))
    assert (small.quantization, small.vectors_on_disk, small.payload_on_disk) == ("none", False, False)
    big = resolve(Config(expected_chunks=1_000_000))
    assert (big.quantization, big.vectors_on_disk, big.payload_on_disk, big.hnsw_m) == ("scalar", True, True, 16)
    mixed = resolve(Config(expected_chunks=1_000_000, quantization="binary", payload_on_disk=False))
    assert (mixed.quantization, mixed.vectors_on_disk, mixed.payload_on_disk) == ("binary", True, False)
    assert resolve(Config()).search.oversampling == 2.0 and resolve(Config()).search.rescore is True


def test_other_settings_for_an_existing_collection_are_refused():
    stored = {**LEGACY_INDEX_SETTINGS, "quantization": "scalar"}
    check_index_settings("c", stored, {"quantization": "scalar", "hnsw_m": None})
    with pytest.raises(ConfigError, match=r"quantization: created with 'scalar', configured 'none'.*new collection"):
        check_index_settings("c", stored, {"quantization": "none"})


@pytest.mark.parametrize("backend", ["edge", "memory"])
def test_an_existing_collection_keeps_its_settings(tmp_path, tiny_settings, corpus_docs, backend):
    from qdrant_client import QdrantClient

    from m3retriever import Retriever

    client = QdrantClient(":memory:") if backend == "memory" else None
    location = ":memory:" if client is not None else str(tmp_path / "store")

    def make(**more: Any) -> Retriever:
        return Retriever(load_config(env={}, location=location, **tiny_settings, **more), client=client)

    old = make()
    old.ingest(corpus_docs[:4])
    before = [h.doc_id for h in old.search("bank", rerank=False)]
    assert old.info()["index"] == dict(LEGACY_INDEX_SETTINGS)
    old.close()
    # Auto settings for a big collection do not apply to an existing one: it keeps its own.
    again = make(expected_chunks=5_000_000)
    assert again.info()["index"]["quantization"] == "none"
    assert [h.doc_id for h in again.search("bank", rerank=False)] == before
    again.close()
    with pytest.raises(ConfigError, match="quantization: created with 'none', configured 'scalar'"):
        make(quantization="scalar")
    make(quantization="none", hnsw_m=16).close()  # the same values, explicit: fine


def test_a_new_collection_takes_the_settings_and_searches_rescored(tmp_path, tiny_settings, corpus_docs):
    from m3retriever import Retriever

    plain = Retriever(load_config(env={}, location=str(tmp_path / "a"), **tiny_settings))
    quant = Retriever(load_config(env={}, location=str(tmp_path / "b"), expected_chunks=1_000_000, **tiny_settings))
    for r in (plain, quant):
        r.ingest(corpus_docs)
        r.optimize()
    assert quant.info()["index"] == {**LEGACY_INDEX_SETTINGS, **auto_index_settings(1_000_000)}
    for query in ("bank", "river", "money"):
        a = [h.doc_id for h in plain.search(query, rerank=False)]
        assert [h.doc_id for h in quant.search(query, rerank=False)] == a
    plain.close()
    quant.close()
