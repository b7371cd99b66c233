"""``Store.warm_up`` / ``Retriever.warm_up`` / ``m3retriever warm-up``: an embedded collection's
vector storages and indexes are read (at least their size on disk), nothing changes on disk or
in the results; qdrant-client keeps its own caches (0 bytes)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from m3retriever.cli import build_parser, main
from m3retriever.ingest import point_id
from m3retriever.store import open_store
from m3retriever.store.schema import BM25, DENSE, SPARSE, Branch, CollectionSpec, HybridQuery, StoredPoint
from m3retriever.store.warm import read_files, read_into_cache, vector_files
from m3retriever.types import SparseVector

DIM = 32
N = 400
# The large-collection layout: int8 copy in RAM, float vectors and sparse indexes on disk.
SPEC = CollectionSpec(
    name="c",
    dense_dim=DIM,
    sparse=True,
    bm25=True,
    fingerprint={"model": "synthetic"},
    quantization="scalar",
    vectors_on_disk=True,
    payload_on_disk=True,
)


def _sparse(rng: np.random.Generator, vocab: int, n: int) -> SparseVector:
    idx = sorted(rng.choice(vocab, size=n, replace=False).tolist())
    return SparseVector(tuple(idx), tuple(float(v) for v in rng.uniform(0.1, 2.0, size=n)))


def _points() -> list[StoredPoint]:
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(N, DIM))
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    return [
        StoredPoint(
            id=point_id(f"doc{i}", 0),
            payload={"doc_id": f"doc{i}", "chunk_index": 0, "text": f"text {i} " * 20, "metadata": {}},
            dense=dense[i].tolist(),
            sparse=_sparse(rng, 300, 8),
            bm25=_sparse(rng, 80, 4),
        )
        for i in range(N)
    ]


def _queries() -> list[HybridQuery]:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(5):
        d = rng.normal(size=DIM)
        branches = (
            Branch(DENSE, (d / np.linalg.norm(d)).tolist(), 30),
            Branch(SPARSE, _sparse(rng, 300, 5), 30),
            Branch(BM25, _sparse(rng, 80, 3), 30),
        )
        out.append(HybridQuery(branches=branches, limit=10))
        out.append(HybridQuery(branches=branches[:1], limit=10))  # rescored by the float vectors
    return out


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _ranked(store, name: str) -> list[list[tuple[str, float]]]:
    """Ids and scores in rank order; points tied with the last one are left out (which of
    them make the cut, and the order of tied points, are the engine's choice)."""
    out = []
    for hits in store.query(name, _queries()):
        ranked = sorted(hits, key=lambda r: (-round(r.score, 5), r.id))
        cutoff = round(ranked[-1].score, 5)
        out.append([(r.id, round(r.score, 5)) for r in ranked if round(r.score, 5) > cutoff])
    return out


@pytest.fixture
def edge_dir(tmp_path: Path) -> Path:
    """A store directory holding collection ``c``, written in two batches and optimized."""
    location = tmp_path / "edge"
    with open_store(str(location)) as s:
        s.ensure_collection(SPEC)
        points = _points()
        s.upsert("c", points[: N // 2])
        s.upsert("c", points[N // 2 :])
        s.optimize("c")
    return location


def test_edge_reads_vector_files_and_changes_nothing(edge_dir: Path) -> None:
    segments = edge_dir / "c" / "segments"
    with open_store(str(edge_dir)) as s:
        before_results = _ranked(s, "c")  # opened: loading a shard may rewrite its files
        s.flush("c")
        before = _hashes(edge_dir)
        # Independently of the code under test: the files of every vector storage and index.
        parts = [
            d for d in segments.glob("*/*") if d.is_dir() and d.name.startswith(("vector_storage-", "vector_index-"))
        ]
        storage = sum(
            f.stat().st_size for d in parts if d.name.startswith("vector_storage-") for f in d.rglob("*") if f.is_file()
        )
        expected = sum(f.stat().st_size for d in parts for f in d.rglob("*") if f.is_file())
        payload = sum(
            f.stat().st_size for d in segments.glob("*/payload_*") if d.is_dir() for f in d.rglob("*") if f.is_file()
        )
        assert storage > N * DIM * 4  # at least the float vectors' worth
        read = s.warm_up("c")
        with_payloads = s.warm_up("c", payloads=True)
        after = _hashes(edge_dir)
        assert _ranked(s, "c") == before_results
    assert read >= storage
    assert read == expected  # payloads are left on disk
    assert payload > 0 and read < expected + payload
    assert with_payloads == expected + payload  # and with them, the payload storages and indexes
    assert after == before


def test_memory_store_reads_nothing() -> None:
    with open_store(":memory:") as s:
        s.ensure_collection(SPEC)
        s.upsert("c", _points()[:20])
        before = _ranked(s, "c")
        assert s.warm_up("c") == 0
        assert _ranked(s, "c") == before


def test_vanished_files_and_segments_are_skipped(edge_dir: Path) -> None:
    shard = edge_dir / "c"
    files = vector_files(shard)
    assert files and all(f.parent.name != "payload_storage" and "payload" not in f.parent.name for f in files)
    # What an optimizer does meanwhile: a segment merged away after the files were listed.
    gone = files[-1].relative_to(shard / "segments").parts[0]
    shutil.rmtree(shard / "segments" / gone)
    kept = [f for f in files if f.relative_to(shard / "segments").parts[0] != gone]
    assert len(kept) < len(files)
    assert read_files(files) == sum(f.stat().st_size for f in kept)
    assert read_into_cache(shard, "c") == sum(f.stat().st_size for f in kept)
    assert read_into_cache(edge_dir / "absent", "absent") == 0


def test_cli_prints_bytes_read(edge_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collection", "warm-up", "--location", str(edge_dir), "--collection", "c"]) == 0
    out = capsys.readouterr().out
    expected = sum(f.stat().st_size for f in vector_files(edge_dir / "c"))  # as the opened shard left them
    assert f"read {expected:,} bytes" in out and "'c'" in out
    assert main(["collection", "warm-up", "--location", str(edge_dir), "--collection", "c", "--payloads"]) == 0
    more = sum(f.stat().st_size for f in vector_files(edge_dir / "c", payloads=True))
    assert more > expected and f"read {more:,} bytes" in capsys.readouterr().out


def test_cli_missing_collection_is_a_clean_error(edge_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collection", "warm-up", "--location", str(edge_dir), "--collection", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'nope'" in err and "no collection" in err
    assert "Traceback" not in err
    assert not (edge_dir / "nope").exists()


def test_serve_mcp_takes_warm_up() -> None:
    assert build_parser().parse_args(["serve-mcp", "--warm-up"]).warm_up is True
    assert build_parser().parse_args(["serve-mcp"]).warm_up is False
    from m3retriever_mcp.__main__ import build_parser as mcp_parser

    assert mcp_parser().parse_args(["--warm-up"]).warm_up is True


def test_retriever_warm_up(make_retriever, corpus_docs) -> None:
    r = make_retriever()
    assert r.warm_up() == 0  # no collection yet: nothing to read
    r.ingest(corpus_docs, show_progress=False)
    r.optimize()
    shard = Path(r.config.location) / r.collection
    assert r.warm_up() == sum(f.stat().st_size for f in vector_files(shard)) > 0
