"""Store speed with synthetic vectors of production sizes (1024-d dense + learned sparse).

One child process per (backend, size), so peak RSS is that configuration's own. Each child:
bulk-upserts N points (dense 1024-d, clustered; sparse ~120 non-zeros over a 250k vocabulary,
Zipf-distributed, like BGE-M3's lexical weights), calls optimize(), then times hybrid queries
(dense + sparse prefetch of 100 each, RRF in the engine, limit 10) one at a time, and measures
HNSW recall@100 of the dense branch against an exact search of the same store.

Run alone: ``python tests/benchmarks/bench_store.py --sizes 10000,100000``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DIM = 1024
VOCAB = 250_000
NNZ_DOC = 120
NNZ_QUERY = 12
PREFETCH = 100


def _vectors(n: int, seed: int, centers: Any) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    k = centers.shape[0]
    assign = rng.integers(0, k, size=n)
    x = centers[assign] + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), assign


def _sparse(rng: Any, nnz: int) -> Any:
    import numpy as np

    from m3retriever.types import SparseVector

    ids = np.unique((rng.zipf(1.3, size=nnz * 2) % VOCAB))[:nnz]
    vals = rng.random(len(ids)).astype(np.float32) * 0.3 + 0.01
    return SparseVector(tuple(int(i) for i in ids), tuple(float(v) for v in vals))


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss would include the parent's, inherited at fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(backend: str, n: int, queries: int, out: str) -> None:
    """Build and measure one store; writes a JSON line to ``out``."""
    import numpy as np

    from m3retriever.store import open_store
    from m3retriever.store.schema import DENSE, SPARSE, Branch, CollectionSpec, HybridQuery, StoredPoint

    tmp = Path(tempfile.mkdtemp(prefix=f"m3r-store-{backend}-"))
    try:
        if backend == "edge":
            store = open_store(str(tmp / "edge"))
        else:
            from qdrant_client import QdrantClient

            store = open_store(client=QdrantClient(path=str(tmp / "local")))
        spec = CollectionSpec(name="bench", dense_dim=DIM, sparse=True, fingerprint={"bench": 1})
        store.ensure_collection(spec)
        rng = np.random.default_rng(0)
        centers = rng.standard_normal((max(16, n // 500), DIM)).astype(np.float32)
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
        t0 = time.perf_counter()
        batch = 1000
        for start in range(0, n, batch):
            m = min(batch, n - start)
            dense, _ = _vectors(m, 1 + start, centers)
            pts = [
                StoredPoint(
                    id=f"00000000-0000-4000-8000-{start + i:012d}",
                    payload={"doc_id": f"d{start + i}", "chunk_index": 0, "text": f"synthetic {start + i}"},
                    dense=dense[i],
                    sparse=_sparse(rng, NNZ_DOC),
                )
                for i in range(m)
            ]
            store.upsert("bench", pts)
        t_upsert = time.perf_counter() - t0
        t1 = time.perf_counter()
        store.optimize("bench")
        t_opt = time.perf_counter() - t1
        qd, _ = _vectors(queries, 10_000_019, centers)
        qrng = np.random.default_rng(7)
        qs = [_sparse(qrng, NNZ_QUERY) for _ in range(queries)]
        ef = 2 * PREFETCH
        lat = []
        for i in range(queries):
            hq = HybridQuery(
                branches=(Branch(DENSE, qd[i].tolist(), PREFETCH), Branch(SPARSE, qs[i], PREFETCH)),
                limit=10,
                hnsw_ef=ef,
            )
            t = time.perf_counter()
            store.query("bench", [hq])
            lat.append((time.perf_counter() - t) * 1000)
        # HNSW recall@100 of the dense branch vs exact search on the same data
        recalls = []
        for i in range(min(queries, 50)):
            b = (Branch(DENSE, qd[i].tolist(), PREFETCH),)
            approx = store.query("bench", [HybridQuery(branches=b, limit=PREFETCH, hnsw_ef=ef)])[0]
            exact = store.query("bench", [HybridQuery(branches=b, limit=PREFETCH, exact=True)])[0]
            truth = {r.id for r in exact}
            recalls.append(len(truth & {r.id for r in approx}) / max(1, len(truth)))
        disk = sum(f.stat().st_blocks * 512 for f in tmp.rglob("*") if f.is_file())
        lat_sorted = sorted(lat[1:] if len(lat) > 1 else lat)  # first query warms caches
        result = {
            "backend": backend,
            "n": n,
            "queries": queries,
            "upsert_s": t_upsert,
            "optimize_s": t_opt,
            "p50_ms": statistics.median(lat_sorted),
            "p95_ms": lat_sorted[min(len(lat_sorted) - 1, int(round(0.95 * (len(lat_sorted) - 1))))],
            "recall_at_100": statistics.mean(recalls),
            "peak_rss_mb": _peak_rss_mb(),
            "disk_mb": disk / 2**20,
            "hnsw_ef": ef,
        }
        close = getattr(store, "close", None)
        if close:
            close()
        Path(out).write_text(json.dumps(result))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


LOCAL_MAX_N = 10_000  # qdrant-client local mode is brute force in Python: larger sizes take hours
LOCAL_MAX_QUERIES = 20


def run(sizes: list[int], backends: list[str], queries: int, timeout: float = 1800) -> list[dict[str, Any]]:
    results = []
    for n in sizes:
        for backend in backends:
            nq = queries
            if backend == "local":
                if n > LOCAL_MAX_N:
                    results.append({"backend": backend, "n": n, "skipped": f"skipped: local mode above {LOCAL_MAX_N:,} points is too slow to build and query here"})
                    continue
                nq = min(queries, LOCAL_MAX_QUERIES)
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
                out = fh.name
            cmd = [sys.executable, __file__, "--child", backend, "--n", str(n), "--queries", str(nq), "--json", out]
            t = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
                if proc.returncode != 0 or not Path(out).read_text():
                    results.append({"backend": backend, "n": n, "error": (proc.stderr or "")[-400:]})
                else:
                    results.append(json.loads(Path(out).read_text()))
            except subprocess.TimeoutExpired:
                results.append({"backend": backend, "n": n, "error": f"timed out after {timeout:.0f}s"})
            finally:
                os.unlink(out)
            results[-1]["wall_s"] = time.perf_counter() - t
            print(f"[store] {backend} n={n}: {results[-1]}", file=sys.stderr, flush=True)
    return results


def markdown(results: list[dict[str, Any]], command: str, notes: list[str]) -> str:
    lines = [
        "## Store speed (synthetic vectors, production sizes)",
        "",
        f"Reproduce: `{command}`",
        "",
        f"Points: {DIM}-d dense (clustered, cosine) + learned-sparse (~{NNZ_DOC} non-zeros over a "
        f"{VOCAB:,} vocabulary); queries: dense + sparse ({NNZ_QUERY} terms) prefetch {PREFETCH} "
        f"each, RRF in the engine, limit 10, hnsw_ef = 2 x prefetch; one query per call after a "
        "warm-up. Recall@100: dense branch through HNSW vs `exact=True` on the same store (50 "
        "queries). Peak RSS: the whole child process (Python, numpy data generation included).",
        "",
        "| backend | chunks | p50 ms | p95 ms | recall@100 | upsert s | optimize s | peak RSS MB | disk MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        name = {"edge": "Qdrant Edge (embedded, ours)", "local": "qdrant-client local mode"}.get(r["backend"], r["backend"])
        if "skipped" in r:
            lines.append(f"| {name} | {r['n']:,} | {r['skipped']} | | | | | | |")
            continue
        if "error" in r:
            lines.append(f"| {name} | {r['n']:,} | error: {r['error'].strip().splitlines()[-1] if r['error'].strip() else '?'} | | | | | | |")
            continue
        lines.append(
            f"| {name} | {r['n']:,} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['recall_at_100']:.3f} | "
            f"{r['upsert_s']:.1f} | {r['optimize_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['disk_mb']:.0f} |"
        )
    by = {(r["backend"], r["n"]): r for r in results if "error" not in r and "skipped" not in r}
    ratios = []
    for n in sorted({r["n"] for r in results}):
        e, lo = by.get(("edge", n)), by.get(("local", n))
        if e and lo:
            ratios.append(f"{n:,} chunks: local-mode p50 / Edge p50 = {lo['p50_ms'] / e['p50_ms']:.1f}x")
    if ratios:
        lines += ["", "Same-run ratios: " + "; ".join(ratios) + "."]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--n", type=int)
    ap.add_argument("--json")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--backends", default="edge,local")
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.n, args.queries, args.json)
        return 0
    res = run([int(s) for s in args.sizes.split(",")], args.backends.split(","), args.queries)
    print(markdown(res, "python tests/benchmarks/bench_store.py --sizes " + args.sizes, []))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    raise SystemExit(main())
