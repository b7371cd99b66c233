"""Copy speed: a collection of synthetic chunks copied between stores with
:func:`m3retriever.copy_collection` (no model runs), against re-encoding.

Shapes: ``small`` (the small profile's: 384-d dense, learned sparse of ~120 non-zeros, BM25
of ~60 non-zeros) and ``bge-m3`` (1024-d dense, sparse of ~120 non-zeros); every chunk has a
payload like an ingested one (a 1,000-character text, ids, metadata). The source is an
embedded (Qdrant Edge) store built once per shape; each copy goes to a fresh target, Edge ->
Edge and Edge -> qdrant-client ``:memory:``, without building the target's HNSW (timed apart
for Edge -> Edge, ``--optimize``). Counts and a sample of 64 points are verified by the copy.

    flock /work/cache/timing.lock python tests/benchmarks/bench_copy.py --n 100000 --out /tmp/copy.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

SHAPES = {"small": (384, 120, 60), "bge-m3": (1024, 120, 0)}
VOCAB = 30_000


def _sparse(rng: Any, nnz: int) -> Any:
    from m3retriever.types import SparseVector

    ids = sorted(set(rng.integers(0, VOCAB, size=nnz).tolist()))
    return SparseVector(tuple(ids), tuple(float(v) for v in rng.uniform(0.01, 3.0, size=len(ids))))


def build(location: str, shape: str, n: int, batch: int = 1000) -> float:
    """Fill collection ``c`` of an embedded store with ``n`` synthetic chunks; seconds taken."""
    import numpy as np

    from m3retriever.ingest import point_id
    from m3retriever.store import open_store
    from m3retriever.store.schema import CollectionSpec, StoredPoint

    dim, nnz, nnz_bm25 = SHAPES[shape]
    spec = CollectionSpec(name="c", dense_dim=dim, sparse=True, bm25=nnz_bm25 > 0, fingerprint={"shape": shape})
    rng = np.random.default_rng(0)
    text = "lorem ipsum dolor sit amet " * 37
    start = time.perf_counter()
    store = open_store(location)
    try:
        store.ensure_collection(spec)
        for lo in range(0, n, batch):
            dense = rng.standard_normal((min(batch, n - lo), dim)).astype(np.float32)
            dense /= np.linalg.norm(dense, axis=1, keepdims=True)
            points = [
                StoredPoint(
                    id=point_id(f"doc{lo + i}", 0),
                    payload={"doc_id": f"doc{lo + i}", "chunk_index": 0, "n_chunks": 1, "text": text[:1000],
                             "source": "synthetic", "metadata": {"group": (lo + i) % 17}, "content_hash": "h"},
                    dense=row.tolist(),
                    sparse=_sparse(rng, nnz),
                    bm25=_sparse(rng, nnz_bm25) if nnz_bm25 else None,
                )
                for i, row in enumerate(dense)
            ]
            store.upsert("c", points)
        store.flush("c")
    finally:
        store.close()
    return time.perf_counter() - start


def run(shape: str, n: int, optimize: bool, work: Path) -> list[dict[str, Any]]:
    from m3retriever import Config, copy_collection, open_collection
    from m3retriever.store import open_store

    source = str(work / f"src-{shape}")
    built = build(source, shape, n)
    rows = []
    for target in ("edge", "memory"):
        src = open_store(source)
        dst = open_store(str(work / f"dst-{shape}") if target == "edge" else ":memory:")
        try:
            report = copy_collection(open_collection(Config(collection="c"), store=src), dst, batch=512, optimize=optimize and target == "edge")
        finally:
            dst.close()
            src.close()
        shutil.rmtree(work / f"dst-{shape}", ignore_errors=True)
        rows.append(
            {"shape": shape, "target": target, "n": report.target_count, "seconds": report.seconds,
             "pps": report.points_per_second, "build": built,
             "optimize": report.optimize_seconds if optimize and target == "edge" else None}
        )
        print(rows[-1], file=sys.stderr, flush=True)
    shutil.rmtree(source, ignore_errors=True)
    return rows


def markdown(rows: list[dict[str, Any]], command: str, load: str) -> str:
    lines = [
        "## Copying a collection between stores (no re-encoding)",
        "",
        f"`{command}` (load average before the run: {load})",
        "",
        "| shape | from -> to | chunks | copy wall time | points/s | target HNSW build | source built in |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        opt = "-" if r["optimize"] is None else f"{r['optimize']:.0f} s"
        lines.append(
            f"| {r['shape']} | edge -> {'edge' if r['target'] == 'edge' else ':memory:'} | {r['n']:,} | "
            f"{r['seconds']:.0f} s | {r['pps']:,.0f} | {opt} | {r['build']:.0f} s |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--shapes", default="small,bge-m3")
    ap.add_argument("--optimize", action="store_true", help="also time the Edge target's HNSW build")
    ap.add_argument("--work", default=None, help="scratch directory (default: a temporary one)")
    ap.add_argument("--out", default=None, help="markdown file to write")
    args = ap.parse_args(argv)
    load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    work = Path(args.work or tempfile.mkdtemp(prefix="m3r-bench-copy-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for shape in args.shapes.split(","):
            rows += run(shape, args.n, args.optimize, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    command = "python tests/benchmarks/bench_copy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(rows, command.strip(), load)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
