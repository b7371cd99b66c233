"""Store scale: hybrid latency, recall, build time, memory and disk by size, dimension and
memory plan (quantization, on-disk vectors and payloads, HNSW shape).

Each configuration runs in its own child process on Qdrant Edge, through the same ``Store``
interface searches use. The child streams synthetic chunks in batches (never holding all
vectors): clustered unit vectors of ``--dim`` dimensions (a mixture of ``n / 500`` centres,
so HNSW sees the neighbourhood structure of real embeddings, not uniform noise), a learned-
sparse vector (~120 Zipf-distributed terms over a 250k vocabulary, like BGE-M3's lexical
weights) and a payload with ``--text-chars`` characters of text (a 512-token chunk is about
2,000). It upserts them, calls ``optimize()`` (Edge builds HNSW only then), times hybrid
queries (dense + sparse prefetch of 100 each, RRF in the engine, limit 10; a first pass of
other queries right after opening the store is reported apart as the cold p50), then each
branch alone on the engine (other queries again: where the time goes), then measures
recall@100 against exact results computed here with numpy by regenerating the same vectors
batch by batch:

- dense: the dense branch alone (HNSW over the quantized vectors, rescored) vs the exact
  top 100 by cosine;
- fused: the hybrid list (limit 100) vs RRF (same k) of the exact dense top 100 and the
  engine's sparse top 100 (sparse search is exact).

Memory: the parent samples the child's resident set every 0.2 s (``VmRSS``, and ``RssAnon``,
the part that is not file pages the kernel can drop) and reports the peaks; disk is the
collection's allocated blocks.

    flock /work/cache/timing.lock python tests/benchmarks/bench_scale.py --n 100000 --dim 1024 --plan scalar
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

VOCAB = 250_000
NNZ_DOC = 120
NNZ_QUERY = 12
PREFETCH = 100
RRF_K = 60
BATCH = 1000
RECALL_QUERIES = 50

PLANS: dict[str, dict[str, Any]] = {
    "none": {"quantization": "none"},
    "none-disk": {"quantization": "none", "vectors_on_disk": True, "payload_on_disk": True},
    "scalar": {"quantization": "scalar", "vectors_on_disk": True, "payload_on_disk": True},
    "scalar-ram": {"quantization": "scalar"},
    "binary": {"quantization": "binary", "vectors_on_disk": True, "payload_on_disk": True},
    "turbo": {"quantization": "turbo", "vectors_on_disk": True, "payload_on_disk": True},
}
"""Named memory plans: ``CollectionSpec`` fields."""


def centers(n: int, dim: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(0)
    c = rng.standard_normal((max(16, n // 500), dim)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def dense_batch(start: int, m: int, cen: Any, spread: float = 1.0) -> Any:
    """Points ``start .. start+m`` (deterministic per batch start)."""
    import numpy as np

    rng = np.random.default_rng(1 + start)
    dim = cen.shape[1]
    x = cen[rng.integers(0, cen.shape[0], size=m)] + spread * rng.standard_normal((m, dim)).astype(np.float32) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def sparse_rows(rng: Any, m: int, nnz: int) -> list[Any]:
    import numpy as np

    from m3retriever.types import SparseVector

    raw = rng.zipf(1.3, size=(m, nnz * 2)) % VOCAB
    vals = rng.random((m, nnz)).astype(np.float32) * 0.3 + 0.01
    out = []
    for i in range(m):
        ids = np.unique(raw[i])[:nnz]
        out.append(SparseVector(tuple(ids.tolist()), tuple(vals[i, : len(ids)].tolist())))
    return out


def pid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def _plan(args: argparse.Namespace) -> dict[str, Any]:
    plan = dict(PLANS[args.plan])
    if args.hnsw_m:
        plan["hnsw_m"] = args.hnsw_m
    if args.hnsw_ef_construct:
        plan["hnsw_ef_construct"] = args.hnsw_ef_construct
    return plan


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One phase (``upsert``, ``optimize``, ``query``) or all of them, in this process."""
    from m3retriever.store import open_store
    from m3retriever.store.schema import CollectionSpec

    plan = _plan(args)
    root = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="m3r-scale-", dir=args.workdir))
    store = open_store(str(root / "edge"))
    store.ensure_collection(CollectionSpec(name="bench", dense_dim=args.dim, sparse=True, fingerprint={"bench": 1}, **plan))
    out: dict[str, Any] = {"n": args.n, "dim": args.dim, "plan": args.plan, "quantization": plan["quantization"]}
    out.update({k: v for k, v in plan.items() if k != "quantization"})
    phases = ("upsert", "optimize", "query") if args.phase == "all" else (args.phase,)
    try:
        if "upsert" in phases:
            out.update(_upsert(store, args))
        if "optimize" in phases:
            t = time.perf_counter()
            store.optimize("bench")
            out["optimize_s"] = time.perf_counter() - t
        if "query" in phases:
            if args.preread:  # the library's own warm-up
                out["preread_mb"] = store.warm_up("bench", payloads=args.preread == "all") // 2**20
            out.update(_query(store, args, plan))
    finally:
        store.close()
    if "query" in phases:
        out["disk_mb"] = sum(f.stat().st_blocks * 512 for f in (root / "edge").rglob("*") if f.is_file()) / 2**20
        if args.phase == "all" or args.cleanup:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    return out


def _upsert(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from m3retriever.store.schema import StoredPoint

    cen = centers(args.n, args.dim)
    words = np.random.default_rng(3).integers(97, 123, size=4 * args.text_chars + 4096, dtype=np.uint8).tobytes().decode()
    srng = np.random.default_rng(2)
    t_upsert = t_gen = 0.0
    for start in range(0, args.n, BATCH):
        t = time.perf_counter()
        m = min(BATCH, args.n - start)
        dense = dense_batch(start, m, cen)
        sparse = sparse_rows(srng, m, NNZ_DOC)
        pts = [
            StoredPoint(
                id=pid(start + i),
                payload={"doc_id": f"d{start + i}", "chunk_index": 0, "text": words[(start + i) % 4096 :][: args.text_chars]},
                dense=dense[i],
                sparse=sparse[i],
            )
            for i in range(m)
        ]
        t1 = time.perf_counter()
        store.upsert("bench", pts)
        t_gen += t1 - t
        t_upsert += time.perf_counter() - t1
    t = time.perf_counter()
    store.flush("bench")
    return {"gen_s": t_gen, "upsert_s": t_upsert + time.perf_counter() - t}


def _query(store: Any, args: argparse.Namespace, plan: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from m3retriever.store.schema import DENSE, SPARSE, Branch, HybridQuery

    n = args.n
    cen = centers(n, args.dim)
    o = args.query_set * 1_000  # another query set: queries no earlier run has sent
    qd = dense_batch(10_000_019 + o, args.queries, cen)
    qs = sparse_rows(np.random.default_rng(7 + o), args.queries, NNZ_QUERY)
    # Other queries for the warm-up pass and for each branch alone: no timed query finds the
    # pages an earlier timed query of its own read.
    qd_warm, qd_dense = dense_batch(20_000_003 + o, args.queries, cen), dense_batch(30_000_001 + o, args.queries, cen)
    qs_warm = sparse_rows(np.random.default_rng(17 + o), args.queries, NNZ_QUERY)
    qs_sparse = sparse_rows(np.random.default_rng(27 + o), args.queries, NNZ_QUERY)
    knobs: dict[str, Any] = {"hnsw_ef": args.hnsw_ef or 2 * PREFETCH}
    if plan["quantization"] != "none":
        knobs.update(rescore=not args.no_rescore, oversampling=args.oversampling)

    def hybrid(i: int, limit: int, dense: Any = qd, sparse: Any = qs) -> Any:
        branches = (Branch(DENSE, dense[i].tolist(), PREFETCH), Branch(SPARSE, sparse[i], PREFETCH))
        return HybridQuery(branches=branches, limit=limit, rrf_k=RRF_K, **knobs)

    # Each branch alone as the hybrid query runs it as a prefetch (top PREFETCH candidates, no
    # payload), straight on the engine's shard: where a hybrid query's time goes.
    q, shard = store.q, store._shard("bench")
    dense_params = store.tr.kit.search_params(
        knobs["hnsw_ef"], False, store.tr.kit.quantization_search(knobs.get("rescore"), knobs.get("oversampling"))
    )

    def dense_only(i: int) -> Any:
        vec = q.Query.Nearest(qd_dense[i].tolist(), using=DENSE)
        return q.QueryRequest(limit=PREFETCH, query=vec, params=dense_params, with_payload=False)

    def sparse_only(i: int) -> Any:
        vec = q.Query.Nearest(q.SparseVector(list(qs_sparse[i].indices), list(qs_sparse[i].values)), using=SPARSE)
        return q.QueryRequest(limit=PREFETCH, query=vec, with_payload=False)

    def timed(run: Any, make: Any) -> list[float]:
        out = []
        for i in range(args.queries):
            t = time.perf_counter()
            run(make(i))
            out.append((time.perf_counter() - t) * 1000)
        return sorted(out)

    # The first pass after opening the collection reads its pages from disk (or the page
    # cache): reported as the cold p50; the timed passes follow it.
    lat_cold = timed(lambda hq: store.query("bench", [hq]), lambda i: hybrid(i, 10, qd_warm, qs_warm))
    lat = timed(lambda hq: store.query("bench", [hq]), lambda i: hybrid(i, 10))
    lat_dense = timed(shard.query, dense_only)
    lat_sparse = timed(shard.query, sparse_only)
    serving = _status(os.getpid())  # resident memory while serving queries, after the build
    # Recall: approximate lists from the engine, exact truth from numpy over regenerated data.
    nr = min(RECALL_QUERIES, args.queries)
    approx_dense, approx_fused, exact_sparse = [], [], []
    for i in range(nr):
        b = (Branch(DENSE, qd[i].tolist(), PREFETCH),)
        approx_dense.append([r.id for r in store.query("bench", [HybridQuery(branches=b, limit=PREFETCH, **knobs)])[0]])
        approx_fused.append([r.id for r in store.query("bench", [hybrid(i, PREFETCH)])[0]])
        sb = (Branch(SPARSE, qs[i], PREFETCH),)
        exact_sparse.append([r.id for r in store.query("bench", [HybridQuery(branches=sb, limit=PREFETCH)])[0]])
    info = store.info("bench")
    best_s, best_i = _exact_dense(args, cen, qd[:nr])
    rd, rf = [], []
    for i in range(nr):
        order = np.argsort(-best_s[i], kind="stable")
        truth_dense = [pid(int(best_i[i, j])) for j in order]
        rd.append(len(set(truth_dense) & set(approx_dense[i])) / PREFETCH)
        fused: dict[str, float] = {}
        for lst in (truth_dense, exact_sparse[i]):
            for rank, point in enumerate(lst, 1):
                fused[point] = fused.get(point, 0.0) + 1.0 / (RRF_K + rank - 1)
        truth_fused = sorted(fused, key=lambda p: -fused[p])[:PREFETCH]
        rf.append(len(set(truth_fused) & set(approx_fused[i])) / PREFETCH)
    return {
        "oversampling": knobs.get("oversampling"),
        "queries": args.queries,
        "p50_ms": statistics.median(lat),
        "p95_ms": lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))],
        "cold_p50_ms": statistics.median(lat_cold),
        "dense_p50_ms": statistics.median(lat_dense),
        "sparse_p50_ms": statistics.median(lat_sparse),
        "hnsw_ef": knobs["hnsw_ef"],
        "rescore": knobs.get("rescore"),
        "query_set": args.query_set,
        "preread": args.preread,
        "recall_dense": statistics.mean(rd),
        "recall_fused": statistics.mean(rf),
        "serving_rss_mb": serving.get("VmRSS"),
        "serving_anon_mb": serving.get("RssAnon"),
        "segments": info["segments"],
        "indexed_vectors": info["indexed_vectors"],
    }


def _exact_dense(args: argparse.Namespace, cen: Any, qmat: Any) -> tuple[Any, Any]:
    """Exact top ``PREFETCH`` scores and indices of each query row, by numpy over the
    regenerated vectors; kept beside a kept ``--store`` so reruns of the query phase reuse it."""
    import numpy as np

    cache = Path(args.store).parent / f"{Path(args.store).name}.exact-{len(qmat)}{'-q%d' % args.query_set if args.query_set else ''}.npz" if args.store else None
    if cache is not None and cache.exists():
        kept = np.load(cache)
        return kept["s"], kept["i"]
    n, nr = args.n, len(qmat)
    best_s = np.full((nr, PREFETCH), -np.inf, dtype=np.float32)
    best_i = np.zeros((nr, PREFETCH), dtype=np.int64)
    for start in range(0, n, BATCH * 10):
        m = min(BATCH * 10, n - start)
        x = np.concatenate([dense_batch(s, min(BATCH, start + m - s), cen) for s in range(start, start + m, BATCH)])
        all_s = np.concatenate([best_s, qmat @ x.T], axis=1)
        all_i = np.concatenate([best_i, np.arange(start, start + m)[None, :].repeat(nr, 0)], axis=1)
        top = np.argpartition(-all_s, PREFETCH - 1, axis=1)[:, :PREFETCH]
        best_s = np.take_along_axis(all_s, top, 1)
        best_i = np.take_along_axis(all_i, top, 1)
    if cache is not None:
        np.savez(cache, s=best_s, i=best_i)
    return best_s, best_i


def _status(pid_: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid_}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "VmHWM"):
                out[key] = int(rest.split()[0]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def run(argv: list[str], limit_mb: int) -> dict[str, Any]:
    """One configuration in a child; samples its memory and kills it above ``limit_mb``."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    proc = subprocess.Popen([sys.executable, __file__, "--child", "--json", out, *argv], stderr=subprocess.PIPE, text=True)
    peak = {"VmRSS": 0, "RssAnon": 0}
    killed = []

    def sample() -> None:
        while proc.poll() is None:
            st = _status(proc.pid)
            for k in peak:
                peak[k] = max(peak[k], st.get(k, 0))
            if st.get("RssAnon", 0) > limit_mb:
                killed.append(st["RssAnon"])
                proc.kill()
            time.sleep(0.2)

    t0 = time.perf_counter()
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, err = proc.communicate()
    th.join()
    text = Path(out).read_text() if Path(out).exists() else ""
    os.unlink(out)
    if proc.returncode != 0 or not text:
        why = f"killed at {killed[0]} MB anonymous RSS" if killed else (err or "")[-600:]
        res: dict[str, Any] = {"error": why}
    else:
        res = json.loads(text)
    res.update(peak_rss_mb=peak["VmRSS"], peak_anon_mb=peak["RssAnon"], wall_s=time.perf_counter() - t0)
    res["load"] = os.getloadavg()
    return res


def row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"| {r.get('n', '?'):,} | {r.get('dim', '?')} | {r.get('plan', '?')} | error: {r['error'].strip().splitlines()[-1] if r['error'].strip() else '?'} |"
    knobs = f"{r.get('hnsw_ef', 200)} / {_mb(r.get('oversampling'))}" + (" / no rescore" if r.get("rescore") is False else "")
    if r.get("preread_mb"):
        knobs += " / pre-read all" if r.get("preread") == "all" else " / pre-read"
    return (
        f"| {r['n']:,} | {r['dim']} | {r['plan']} | {r.get('hnsw_ef_construct', 128)} | {knobs} | {_ms(r.get('cold_p50_ms'))} | {r['p50_ms']:.1f} | "
        f"{r['p95_ms']:.1f} | {_ms(r.get('dense_p50_ms'))} | {_ms(r.get('sparse_p50_ms'))} | {r['recall_dense']:.3f} | "
        f"{r['recall_fused']:.3f} | {r['upsert_s']:.0f} | {r['optimize_s']:.0f} | {r['peak_rss_mb']:,} | "
        f"{r['peak_anon_mb']:,} | {_mb(r.get('serving_rss_mb'))} | {r['disk_mb']:,.0f} |"
    )


def _ms(value: Any) -> str:
    return "–" if value is None else f"{value:.1f}"


def _mb(value: Any) -> str:
    return "–" if value is None else f"{value:,}"


HEADER = (
    "| chunks | dim | plan | ef_construct | hnsw_ef / oversampling | cold p50 ms | hybrid p50 ms | p95 ms | dense p50 ms | "
    "sparse p50 ms | recall@100 dense | recall@100 fused | upsert s | optimize s | peak RSS MB | peak anon MB | "
    "serving RSS MB | disk MB |\n" + "|---" * 18 + "|"
)


def _merge_phase(store: Path, phase: str, res: dict[str, Any], cleanup: bool) -> dict[str, Any] | None:
    """Keep each phase's result beside the store; after ``query``, one result of all phases
    (times of each, the highest memory peaks, the sum of wall times). The query phase can run
    again with other search settings; ``cleanup`` forgets the kept phases."""
    done = store.parent / (store.name + ".phases.json")
    phases = json.loads(done.read_text()) if done.exists() else {}
    phases[phase] = res
    done.write_text(json.dumps(phases))
    print(json.dumps(res), file=sys.stderr)
    if phase != "query" or "error" in res:
        return None
    if cleanup:
        done.unlink()
    merged: dict[str, Any] = {}
    for part in phases.values():
        merged.update(part)
    for key in ("peak_rss_mb", "peak_anon_mb"):
        merged[key] = max(p.get(key, 0) for p in phases.values())
    merged["wall_s"] = sum(p.get("wall_s", 0.0) for p in phases.values())
    merged["phases"] = {k: {"wall_s": v.get("wall_s"), "peak_rss_mb": v.get("peak_rss_mb"), "load": v.get("load")} for k, v in phases.items()}
    return merged


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--plan", choices=sorted(PLANS), default="scalar")
    ap.add_argument("--hnsw-m", type=int, default=0)
    ap.add_argument("--hnsw-ef-construct", type=int, default=0)
    ap.add_argument("--oversampling", type=float, default=2.0)
    ap.add_argument(
        "--preread",
        nargs="?",
        const="vectors",
        choices=["vectors", "all"],
        help="read the vector storages and indexes (all: and payloads) into the page cache first",
    )
    ap.add_argument("--query-set", type=int, default=0, help="another set of queries (0: the default set)")
    ap.add_argument("--no-rescore", action="store_true", help="quantized plans: keep the quantized scores (no float reads)")
    ap.add_argument("--hnsw-ef", type=int, default=0, help="search-time HNSW ef (default: twice the prefetch, 200)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--text-chars", type=int, default=2000)
    ap.add_argument("--phase", choices=["all", "upsert", "optimize", "query"], default="all",
                    help="run one phase on a kept --store (each under its own lock, for sizes whose build is long)")
    ap.add_argument("--store", help="keep the store in this folder across phases")
    ap.add_argument("--cleanup", action="store_true", help="delete --store after the query phase")
    ap.add_argument("--workdir", default=None, help="where the temporary store goes (default: the system's)")
    ap.add_argument("--limit-mb", type=int, default=14_000, help="kill the child above this anonymous RSS")
    ap.add_argument("--jsonl", help="append the result to this file")
    ap.add_argument("--table", help="print the table of the results in this JSONL file and exit")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.child:
        Path(args.json).write_text(json.dumps(child(args)))
        return 0
    if args.table:
        results = [json.loads(line) for line in Path(args.table).read_text().splitlines() if line.strip()]
        results.sort(key=lambda r: (r.get("dim", 0), r.get("n", 0), r.get("plan", "")))
        print(HEADER)
        print("\n".join(row(r) for r in results))
        loads = [r["load"][0] for r in results if "load" in r]
        if loads:
            print(f"\nLoad average (1 min) at the end of the runs: {min(loads):.1f} to {max(loads):.1f}.")
        return 0
    raw = list(argv if argv is not None else sys.argv[1:])
    for flag in ("--jsonl", "--limit-mb"):
        if flag in raw:
            i = raw.index(flag)
            del raw[i : i + 2]
    res = run(raw, args.limit_mb)
    res.setdefault("n", args.n)
    res.setdefault("dim", args.dim)
    res.setdefault("plan", args.plan)
    if args.phase != "all":
        merged = _merge_phase(Path(args.store), args.phase, res, args.cleanup)
        if merged is None:
            return 0
        res = merged
    print(json.dumps(res), file=sys.stderr)
    if args.jsonl:
        with open(args.jsonl, "a") as fh:
            fh.write(json.dumps(res) + "\n")
    print(HEADER)
    print(row(res))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    raise SystemExit(main())
