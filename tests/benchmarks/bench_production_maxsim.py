"""The engine side of a multivector (ColBERT, MaxSim) rescoring stage in Qdrant Edge.

Random 1024-d token vectors (``n_chunks`` x ``tokens`` per chunk) under a named multivector with
the MaxSim comparator and no HNSW (it is only rescored), next to a dense and a sparse vector per
chunk. Timed: prefetch (dense + sparse) -> RRF over ``candidates``, with and without a final
MaxSim query of a ``query_tokens``-token multivector over the fused candidates. Part of
``bench_production.py --parts multivector``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from bench_production import log, measured

__all__ = ["run_multivector"]


def run_multivector(root: Path, n_chunks: int, tokens: int, query_tokens: int, reps: int) -> dict[str, Any]:
    """MaxSim rescoring of fused candidates inside Qdrant Edge, against the same query without it."""
    import numpy as np
    import qdrant_edge as qe

    rng = np.random.default_rng(0)
    dim = 1024
    shard = qe.EdgeShard.create(
        str(root / "mv"),
        qe.EdgeConfig(
            vectors={
                "dense": qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
                "colbert": qe.EdgeVectorParams(
                    size=dim,
                    distance=qe.Distance.Cosine,
                    multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                    hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000),
                ),
            },
            sparse_vectors={"sparse": qe.EdgeSparseVectorParams()},
        ),
    )

    def unit(*shape: int) -> Any:
        x = rng.standard_normal(shape).astype(np.float32)
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    def sparse() -> Any:
        idx = np.unique(rng.integers(0, 250_000, 120))
        return qe.SparseVector(indices=idx.tolist(), values=rng.random(len(idx)).tolist())

    t = time.perf_counter()
    batch = 20
    for start in range(0, n_chunks, batch):
        points = [
            qe.Point(
                id=i,
                vector={"dense": unit(dim).tolist(), "colbert": unit(tokens, dim).tolist(), "sparse": sparse()},
                payload={},
            )
            for i in range(start, min(n_chunks, start + batch))
        ]
        shard.update(qe.UpdateOperation.upsert_points(points))
    shard.optimize()
    upsert_s = time.perf_counter() - t
    log(f"multivector store: {n_chunks} chunks x {tokens} tokens in {upsert_s:.0f}s")
    out: dict[str, Any] = {"chunks": n_chunks, "tokens_per_chunk": tokens, "query_tokens": query_tokens, "build_s": upsert_s}
    for candidates in (50, 100):
        qs = [(unit(dim).tolist(), sparse(), unit(query_tokens, dim).tolist()) for _ in range(reps)]

        def fused(q: Any, limit: int, candidates: int = candidates) -> Any:
            return [
                qe.Prefetch(limit=candidates, query=qe.Query.Nearest(q[0], using="dense")),
                qe.Prefetch(limit=candidates, query=qe.Query.Nearest(q[1], using="sparse")),
            ], limit

        def without(q: Any, candidates: int = candidates) -> Any:
            pre, _ = fused(q, candidates)
            return shard.query(qe.QueryRequest(limit=candidates, query=qe.Fusion.Rrf(k=60), prefetches=pre))

        def with_mv(q: Any, candidates: int = candidates) -> Any:
            pre, _ = fused(q, candidates)
            stage = qe.Prefetch(limit=candidates, query=qe.Fusion.Rrf(k=60), prefetches=pre)
            return shard.query(qe.QueryRequest(limit=10, query=qe.Query.Nearest(q[2], using="colbert"), prefetches=[stage]))

        n_fused, n_mv = len(without(qs[0])), len(with_mv(qs[0]))
        a = [measured(lambda q=q: without(q), 1)[0] for q in qs]
        b = [measured(lambda q=q: with_mv(q), 1)[0] for q in qs]
        out[str(candidates)] = {
            "fused_ms": 1000 * statistics.median(w for w, _ in a),
            "with_maxsim_ms": 1000 * statistics.median(w for w, _ in b),
            "fused_cpu_ms": 1000 * statistics.median(c for _, c in a),
            "with_maxsim_cpu_ms": 1000 * statistics.median(c for _, c in b),
            "hits": [n_fused, n_mv],
        }
        log(f"multivector rescoring of {candidates}: {out[str(candidates)]}")
    shard.close()
    return out
