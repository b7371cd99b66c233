"""Copying a collection between stores (Qdrant Edge and qdrant-client ``:memory:``, both ways),
resuming an interrupted copy, and snapshots of embedded collections with their restore."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m3retriever import Config, copy_collection, open_collection, restore_snapshot, snapshot_collection
from m3retriever.cli import main
from m3retriever.errors import ConfigError, FingerprintMismatchError, InputError, StoreError
from m3retriever.ingest import point_id
from m3retriever.maintenance.snapshot import check_embedded
from m3retriever.opening import OpenedCollection
from m3retriever.store import open_store
from m3retriever.store.kept import length_stats, search_defaults, set_length_stats, set_search_defaults
from m3retriever.store.remote import QdrantClientStore
from m3retriever.store.schema import BM25, DENSE, SPARSE, Branch, CollectionSpec, HybridQuery, Store, StoredPoint
from m3retriever.types import LengthStats, SparseVector

DIM = 8
SPEC = CollectionSpec(
    name="c", dense_dim=DIM, sparse=True, bm25=True, fingerprint={"dense": {"model": "synthetic"}}, indexed_fields=("lang",)
)


def opened(store: Store, name: str) -> OpenedCollection:
    """Collection ``name`` of an open store, as the maintenance operations take it."""
    return open_collection(Config(collection=name), store=store)


def _points(n: int, seed: int = 0) -> list[StoredPoint]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        dense = rng.normal(size=DIM)
        idx = tuple(sorted(rng.choice(100, size=4, replace=False).tolist()))
        out.append(
            StoredPoint(
                id=point_id(f"d{i}", 0),
                payload={"doc_id": f"d{i}", "chunk_index": 0, "text": f"t{i}", "metadata": {"lang": "en", "n": i}},
                dense=(dense / np.linalg.norm(dense)).tolist(),
                sparse=SparseVector(idx, tuple(float(v) for v in rng.uniform(0.1, 2, size=4))),
                bm25=SparseVector(idx[:2], tuple(float(v) for v in rng.uniform(0.5, 1.5, size=2))),
            )
        )
    return out


def _filled(store: Store, n: int = 120, name: str = "c") -> Store:
    store.ensure_collection(replace(SPEC, name=name))
    store.upsert(name, _points(n))
    set_length_stats(store, name, {BM25: LengthStats(total=1234, count=n)})
    set_search_defaults(store, name, {"rrf_k": 7, "fusion": "dbsf"})
    store.set_metadata(name, {"settings": {"profile": "small"}})
    return store


def _open(kind: str, tmp_path: Path, tag: str) -> Store:
    return open_store(":memory:") if kind == "memory" else open_store(tmp_path / tag)


def _all(store: Store, name: str) -> dict[str, Any]:
    return {r.id: r for r in store.scroll(name, with_vectors=True)}


def _close(x: Any, y: Any) -> bool:
    if isinstance(x, SparseVector):
        return isinstance(y, SparseVector) and x.indices == y.indices and np.allclose(x.values, y.values)
    return bool(np.allclose(x, y, rtol=1e-5, atol=1e-6))


def _same_points(a: Store, b: Store, name_a: str = "c", name_b: str = "c") -> None:
    pa, pb = _all(a, name_a), _all(b, name_b)
    assert pa.keys() == pb.keys()
    for pid, ra in pa.items():
        rb = pb[pid]
        assert dict(ra.payload) == dict(rb.payload)
        assert ra.vectors.keys() == rb.vectors.keys() == {DENSE, SPARSE, BM25}
        assert all(_close(ra.vectors[k], rb.vectors[k]) for k in ra.vectors)


def _rankings(store: Store, name: str) -> list[list[str]]:
    rng = np.random.default_rng(5)
    queries = []
    for _ in range(4):
        d = rng.normal(size=DIM)
        sp = SparseVector(tuple(sorted(rng.choice(100, size=3, replace=False).tolist())), (1.0, 0.5, 0.25))
        branches = (Branch(DENSE, (d / np.linalg.norm(d)).tolist(), 30), Branch(SPARSE, sp, 30), Branch(BM25, sp, 30))
        queries.append(HybridQuery(branches=branches, limit=10, exact=True))
    out = []
    for records in store.query(name, queries):
        ranked = sorted(records, key=lambda r: (-round(r.score, 5), r.id))
        out.append([r.id for r in ranked][:-1])
    return out


def _plain(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k not in ("spec", "index")}  # the target's own


@pytest.mark.parametrize("kinds", [("edge", "memory"), ("memory", "edge"), ("edge", "edge")])
def test_copy_carries_points_vectors_and_metadata(kinds, tmp_path):
    src, dst = _filled(_open(kinds[0], tmp_path, "a")), _open(kinds[1], tmp_path, "b")
    try:
        report = copy_collection(opened(src, "c"), dst, batch=50)
        assert (report.points, report.complete, report.resumed) == (120, True, False)
        assert report.source_count == report.target_count == 120 and report.verified == 64
        _same_points(src, dst)
        assert _plain(dst.metadata("c")) == _plain(src.metadata("c"))  # no checkpoint left
        assert length_stats(dst, "c") == length_stats(src, "c")
        assert search_defaults(dst, "c") == {"rrf_k": 7, "fusion": "dbsf"}
        spec = dst.stored_spec("c")
        assert spec is not None and (spec.dense_dim, spec.sparse, spec.bm25, spec.indexed_fields) == (DIM, True, True, ("lang",))
        assert _rankings(dst, "c") == _rankings(src, "c")
        # idempotent: a second full copy rewrites the same points
        assert copy_collection(opened(src, "c"), dst, batch=70).target_count == 120
    finally:
        src.close()
        dst.close()


class _FailingTarget(QdrantClientStore):
    """A real ``:memory:`` store whose writes fail after ``ok`` batches (a dying server)."""

    def __init__(self, client: Any, ok: int) -> None:
        super().__init__(client)
        self.ok = ok

    def _upsert(self, name: str, points: list[Any]) -> None:
        if self.ok <= 0:
            raise StoreError("connection lost")
        self.ok -= 1
        super()._upsert(name, points)


def test_an_interrupted_copy_resumes_where_it_stopped(tmp_path):
    from qdrant_client import QdrantClient

    client = QdrantClient(location=":memory:")
    src = _filled(open_store(tmp_path / "a"), n=100)
    try:
        with pytest.raises(StoreError, match="connection lost"):
            copy_collection(opened(src, "c"), _FailingTarget(client, ok=3), batch=10)
        target = QdrantClientStore(client)
        assert target.count("c") == 30 and "copy" in target.metadata("c")
        report = copy_collection(opened(src, "c"), target, batch=10)
        assert report.resumed and report.points == 70 and report.complete
        assert "copy" not in target.metadata("c")
        _same_points(src, target)
    finally:
        src.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.integers(1, 40), stops=st.lists(st.integers(0, 4), max_size=4))
def test_any_sequence_of_interruptions_ends_with_the_same_collection(batch, stops):
    src, dst = _filled(open_store(":memory:"), n=60), open_store(":memory:")
    for pages in stops:
        report = copy_collection(opened(src, "c"), dst, batch=batch, max_batches=pages)
        if report.complete:
            break
    final = copy_collection(opened(src, "c"), dst, batch=batch)
    assert final.complete and final.target_count == 60
    assert "copy" not in dst.metadata("c")
    _same_points(src, dst)


def test_a_target_built_otherwise_is_refused_naming_the_field(tmp_path):
    src = _filled(open_store(tmp_path / "a"))
    dst = open_store(":memory:")
    try:
        dst.ensure_collection(CollectionSpec(name="c", dense_dim=DIM, fingerprint={"dense": {"model": "other"}}))
        with pytest.raises(FingerprintMismatchError, match=r"dense\.model"):
            copy_collection(opened(src, "c"), dst)
        assert dst.count("c") == 0
    finally:
        src.close()


def test_counts_that_differ_at_the_end_are_an_error(tmp_path):
    src, dst = _filled(open_store(":memory:"), n=20), open_store(":memory:")
    dst.ensure_collection(SPEC)
    dst.upsert("c", _points(25)[20:])  # five points the source does not hold
    with pytest.raises(StoreError, match="25 points in 'c' but 20 in the source"):
        copy_collection(opened(src, "c"), dst)


def test_bad_copies_are_refused(tmp_path):
    src = _filled(open_store(":memory:"), n=5)
    with pytest.raises(StoreError, match="onto itself"):
        copy_collection(opened(src, "c"), src)
    with pytest.raises(StoreError, match="no collection 'nope' at"):
        copy_collection(opened(src, "nope"), open_store(":memory:"))
    with pytest.raises(ConfigError, match="batch"):
        copy_collection(opened(src, "c"), open_store(":memory:"), batch=0)
    copy_collection(opened(src, "c"), src, to_collection="c2")  # within one store, under another name
    _same_points(src, src, "c", "c2")


def test_copy_of_an_ingested_collection_searches_the_same(tmp_path, tiny_settings, corpus_docs):
    from qdrant_client import QdrantClient

    from m3retriever import Retriever, load_config

    cfg = load_config(env={}, location=str(tmp_path / "edge"), collection="docs", **tiny_settings)
    client = QdrantClient(location=":memory:")
    with Retriever(cfg) as r:
        r.ingest(corpus_docs)
        expected = [[h.doc_id for h in r.search(q, rerank=False)] for q in ("capital of France", "rank fusion")]
        lengths = length_stats(r.store, "docs")
        copy_collection(opened(r.store, "docs"), open_store(client=client))
    with Retriever(cfg, client=client) as copied:
        assert length_stats(copied.store, "docs") == lengths
        got = [[h.doc_id for h in copied.search(q, rerank=False)] for q in ("capital of France", "rank fusion")]
    assert got == expected


def test_snapshot_and_restore_give_identical_searches(tmp_path):
    store = _filled(open_store(tmp_path / "a"))
    before = _rankings(store, "c")
    report = snapshot_collection(open_collection(Config(collection="c"), store=store), tmp_path / "c.snap")
    assert report.points == 120 and report.bytes < 5_000_000  # preallocated zeros are not stored
    store.upsert("c", _points(130)[120:])  # the collection moves on after the snapshot
    with pytest.raises(StoreError, match="holds 130 points"):
        restore_snapshot(store, tmp_path / "c.snap")
    assert restore_snapshot(store, tmp_path / "c.snap", collection="copy").points == 120
    assert _rankings(store, "copy") == before
    assert restore_snapshot(store, tmp_path / "c.snap", overwrite=True).points == 120
    assert store.count("c") == 120 and _rankings(store, "c") == before
    assert search_defaults(store, "copy") == {"rrf_k": 7, "fusion": "dbsf"}
    assert length_stats(store, "copy") == {BM25: LengthStats(total=1234, count=120)}
    store.close()
    other = open_store(tmp_path / "b")
    restore_snapshot(other, tmp_path / "c.snap")
    assert _rankings(other, "c") == before
    other.upsert("c", _points(121)[120:])  # the restored shard takes writes
    assert other.count("c") == 121
    other.close()


def test_snapshot_errors(tmp_path):
    with pytest.raises(ConfigError, match="POST /collections"):
        snapshot_collection(open_collection(Config(collection="c"), store=open_store(":memory:")), tmp_path / "x.snap")
    with pytest.raises(ConfigError, match="POST /collections"):
        check_embedded("http://localhost:6333")
    with pytest.raises(StoreError, match="no collection 'c' at"):
        open_collection(Config(location=str(tmp_path / "a"), collection="c"), must_exist=True)
    with open_store(tmp_path / "a") as s, pytest.raises(StoreError, match="no collection 'c' at"):
        snapshot_collection(open_collection(Config(collection="c"), store=s), tmp_path / "x.snap")
    (tmp_path / "junk.snap").write_bytes(b"not a tar")
    with pytest.raises(InputError, match="is damaged or not one this version made"):
        restore_snapshot(tmp_path / "a", tmp_path / "junk.snap")
    with pytest.raises(InputError, match="does not exist"):
        restore_snapshot(tmp_path / "a", tmp_path / "missing.snap")


def test_cli_copy_snapshot_restore(tmp_path, capsys):
    _filled(open_store(tmp_path / "a"), n=40).close()
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["collection", "copy", "--from", a, "--to", b, "--collection", "c", "--batch", "16"]) == 0
    out = capsys.readouterr().out
    assert "copied 40 points of 'c' to 'c'" in out and "counts 40 = 40" in out
    assert main(["collection", "copy", "--from", a, "--to", b, "--collection", "nope"]) == 2
    assert "no collection 'nope' at" in capsys.readouterr().err
    snap = str(tmp_path / "c.snap")
    assert main(["collection", "snapshot", snap, "--location", b, "--collection", "c"]) == 0
    assert "40 points" in capsys.readouterr().out
    assert main(["collection", "restore", snap, "--location", b]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["collection", "restore", snap, "--location", b, "--collection", "back"]) == 0
    assert "restored 'back': 40 points" in capsys.readouterr().out
    src, dst = open_store(a), open_store(b)
    try:
        _same_points(src, dst, "c", "back")
        assert math.isclose(length_stats(dst, "back")[BM25].total, 1234)
    finally:
        src.close()
        dst.close()


def test_a_server_collection_without_a_kept_description_is_read_from_its_config():
    store = _filled(open_store(":memory:"), n=3)
    kept = store.stored_spec("c")
    store.set_metadata("c", {"spec": None})  # as a collection created by an older version
    assert "spec" not in store.metadata("c")
    # qdrant-client's local mode keeps no payload indexes, so the indexed fields come back only from a server
    assert store.stored_spec("c") == replace(kept, indexed_fields=())
    target = open_store(":memory:")
    assert copy_collection(opened(store, "c"), target).target_count == 3


def test_copy_benchmark_runs_small(tmp_path):
    import importlib.util

    path = Path(__file__).parent / "benchmarks" / "bench_copy.py"
    spec = importlib.util.spec_from_file_location("bench_copy", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "copy.md"
    assert bench.main(["--n", "50", "--shapes", "small", "--work", str(tmp_path / "w"), "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| small")]
    assert len(rows) == 2 and all("| 50 |" in row for row in rows)


def test_every_named_vector_is_written_whatever_its_kind():
    from m3retriever.store.remote import ClientKit
    from m3retriever.store.translate import Translator

    tr = Translator(ClientKit())
    point = StoredPoint(
        id=point_id("d", 0),
        payload={},
        vectors={"dense": [1, 2], "colbert": [[1, 2], [3, 4]], "extra": SparseVector((3,), (0.5,))},
    )
    native = tr.points([point])[0].vector
    assert native["dense"] == [1.0, 2.0] and native["colbert"] == [[1.0, 2.0], [3.0, 4.0]]
    assert (native["extra"].indices, native["extra"].values) == ([3], [0.5])
