"""Sparse branch alone at scale: the inverted index memory-mapped from disk (what
``vectors_on_disk`` gives) against held in RAM (Qdrant Edge's default, and ``Memory.Pinned``).

Each variant is a Qdrant Edge shard with only the learned-sparse vector of the store-scale
benchmark (the same Zipf-distributed ~120 terms a chunk, ``bench_scale.sparse_rows``, the same
seed). ``build`` writes and optimizes it (kept in ``--dir``); ``query`` opens it and times 200
top-100 searches of one query set, 200 of another, then the second set again (no payloads).

    python tests/benchmarks/bench_sparse_index.py build --n 1000000 --variants disk,pinned,ram --dir /tmp/spx
    sync; echo 3 > /proc/sys/vm/drop_caches   # optional: start the queries from a cold page cache
    flock /work/cache/timing.lock python tests/benchmarks/bench_sparse_index.py query --variants disk,pinned,ram --dir /tmp/spx
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from bench_scale import BATCH, NNZ_DOC, NNZ_QUERY, PREFETCH, pid, sparse_rows  # noqa: E402


def _params(q: Any, variant: str) -> Any:
    kinds = {"disk": {"on_disk": True}, "pinned": {"memory": q.Memory.Pinned}, "ram": {}}
    return q.EdgeSparseVectorParams(**kinds[variant])


def build(q: Any, where: Path, variant: str, n: int) -> str:
    import numpy as np

    shutil.rmtree(where, ignore_errors=True)
    config = q.EdgeConfig(vectors={}, sparse_vectors={"sparse": _params(q, variant)}, wal_enabled=True)
    shard = q.EdgeShard.create(str(where), config)
    rng = np.random.default_rng(2)  # the store-scale benchmark's sparse seed
    t = time.perf_counter()
    for start in range(0, n, BATCH):
        rows = sparse_rows(rng, min(BATCH, n - start), NNZ_DOC)
        points = [
            q.Point(pid(start + j), {"sparse": q.SparseVector(list(r.indices), list(r.values))}, {})
            for j, r in enumerate(rows)
        ]
        shard.update(q.UpdateOperation.upsert_points(points))
    shard.flush()
    upsert = time.perf_counter() - t
    t = time.perf_counter()
    shard.optimize()
    optimize = time.perf_counter() - t
    shard.close()
    return f"{variant}: {n:,} points, upsert {upsert:.0f} s, optimize {optimize:.0f} s"


def query(q: Any, where: Path, variant: str) -> str:
    import numpy as np

    shard = q.EdgeShard.load(str(where))
    out = []
    for label, seed in (("first set", 27), ("second set", 37), ("second set again", 37)):
        lat = []
        for r in sparse_rows(np.random.default_rng(seed), 200, NNZ_QUERY):
            vector = q.Query.Nearest(q.SparseVector(list(r.indices), list(r.values)), using="sparse")
            request = q.QueryRequest(limit=PREFETCH, query=vector, with_payload=False)
            t = time.perf_counter()
            shard.query(request)
            lat.append((time.perf_counter() - t) * 1000)
        lat.sort()
        out.append(f"{label} p50 {statistics.median(lat):.1f} ms, p95 {lat[int(0.95 * len(lat))]:.1f} ms")
    shard.close()
    return f"{variant}: " + "; ".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=["build", "query"])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--variants", default="disk,pinned,ram")
    ap.add_argument("--dir", default="/tmp/m3r-sparse-index")
    args = ap.parse_args()
    import qdrant_edge as q

    for variant in args.variants.split(","):
        where = Path(args.dir) / variant
        print(build(q, where, variant, args.n) if args.phase == "build" else query(q, where, variant), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
