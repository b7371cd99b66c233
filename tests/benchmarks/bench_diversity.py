"""Diverse hits on SciFact: what ``max_per_doc`` and ``mmr`` cost and gain.

For each setting, every test query is searched alone (the ``small`` profile, its reranker on)
and the run is scored with BEIR's protocol (self-matches dropped): nDCG@10, distinct documents
among the top 10 hits, and the median and 90th percentile of one query's wall time. A row
with ``rerank_depth=30`` alone separates the cost of reranking the deeper pool that the
diversity settings choose from (``diversity_depth`` defaults to ``3 * top_k``) from the cost of
choosing.

Needs an ingested SciFact collection (``m3retriever ingest <scifact> --profile small``); open a
copy, never a store another process holds::

    flock /work/cache/timing.lock python tests/benchmarks/bench_diversity.py \\
        --store /work/cache/scope-scifact --scifact ../shared/data/scifact --out /tmp/diversity.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("default", {}),
    ("rerank_depth=30", {"rerank_depth": 30}),
    ("max_per_doc=1", {"max_per_doc": 1}),
    ("max_per_doc=2", {"max_per_doc": 2}),
    ("max_per_doc=1, diversity_depth=10", {"max_per_doc": 1, "diversity_depth": 10}),
    ("mmr=0.1", {"mmr": 0.1}),
    ("mmr=0.3", {"mmr": 0.3}),
    ("mmr=0.5", {"mmr": 0.5}),
    ("no rerank", {"rerank": False}),
    ("no rerank, max_per_doc=1", {"rerank": False, "max_per_doc": 1}),
    ("no rerank, mmr=0.3", {"rerank": False, "mmr": 0.3}),
]
NATIVE = [0.3]
"""Diversity values of Qdrant's own MMR (Edge, no rerank) measured for comparison."""


def native_mmr(r: Any, queries: dict[str, str], diversity: float, depth: int = 30) -> tuple[dict[str, list[Any]], list[float]]:
    """Qdrant Edge's MMR over the fused candidates, in the engine: prefetch per branch -> RRF
    (``depth`` candidates) -> MMR on the dense vector; top 10, no rerank.

    Built from the searcher's own requests (private API: a measurement, not a feature), so the
    branches, weights and RRF k are the ones ``search(rerank=False)`` sends.
    """
    from types import SimpleNamespace

    s = r.search_settings(rerank=False, top_k=10, stage_scores=False)
    kit, tr, q = r.store.tr.kit, r.store.tr, r.store.q
    hits: dict[str, list[Any]] = {}
    times = []
    for qid, text in queries.items():
        t0 = time.perf_counter()
        qv = r.encoders.encode_query([r._searcher.cut_query(text)])
        (hq,), _ = r._searcher._requests(qv, 1, s, None)
        params = kit.search_params(hq.hnsw_ef, hq.exact)
        prefetches = [kit.prefetch(tr.vector(b.vector), b.name, b.limit, None, params) for b in hq.branches]
        weights = [b.weight for b in hq.branches]
        fusion = kit.rrf(hq.rrf_k, None if all(w == 1.0 for w in weights) else weights)
        inner = q.Prefetch(limit=depth, prefetches=prefetches, query=fusion)
        dense = next(tr.vector(b.vector) for b in hq.branches if b.name == "dense")
        mmr = q.Mmr(dense, 1.0 - diversity, depth, using="dense")
        request = q.QueryRequest(limit=10, prefetches=[inner], query=mmr, with_payload=True)
        points = r.store._query_batch(r.collection, [request])[0]
        times.append((time.perf_counter() - t0) * 1000)
        hits[qid] = [SimpleNamespace(doc_id=str(p.payload["doc_id"])) for p in points]
    return hits, times


def run_setting(r: Any, queries: dict[str, str], options: dict[str, Any]) -> tuple[dict[str, list[Any]], list[float]]:
    """Hits per query and each query's wall time (ms), one query per call."""
    hits: dict[str, list[Any]] = {}
    times = []
    for qid, text in queries.items():
        t0 = time.perf_counter()
        hits[qid] = list(r.search(text, top_k=10, **options))
        times.append((time.perf_counter() - t0) * 1000)
    return hits, times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True, help="a copy of an ingested SciFact store (small profile)")
    p.add_argument("--collection", default="scifact")
    p.add_argument("--scifact", default=str(HERE.parents[2] / "shared" / "data" / "scifact"))
    p.add_argument("--max-queries", type=int, default=None)
    p.add_argument("--out", default=None, help="markdown file to write (overwritten)")
    args = p.parse_args(argv)

    from m3retriever import Config, Retriever
    from m3retriever.evaluation.data import load_beir
    from m3retriever.evaluation.metrics import score
    from m3retriever.evaluation.protocol import drop_self_matches
    from m3retriever.evaluation.runner import hits_to_run

    data = load_beir(args.scifact, split="test", max_queries=args.max_queries)
    rows = []
    with Retriever(Config(location=args.store, collection=args.collection, profile="small")) as r:
        chunks, docs = r.count(), r.count({"chunk_index": 0})
        for text in list(data.queries.values())[:5]:  # warm the models
            r.search(text)
        runs = [(name, lambda o=options: run_setting(r, data.queries, o)) for name, options in SETTINGS]
        runs += [(f"no rerank, Qdrant's MMR diversity={d}", lambda d=d: native_mmr(r, data.queries, d)) for d in NATIVE]
        for name, measure in runs:
            hits, times = measure()
            run = drop_self_matches(hits_to_run(hits))
            ndcg = score(data.qrels, run, ["ndcg@10"])["ndcg@10"]
            distinct = statistics.mean(len({h.doc_id for h in hs[:10]}) for hs in hits.values())
            q = statistics.quantiles(times, n=10)
            rows.append((name, ndcg, distinct, statistics.median(times), q[8]))
            print(f"{name}: nDCG@10 {ndcg:.4f}, distinct {distinct:.2f}, p50 {statistics.median(times):.1f} ms", file=sys.stderr)
    base = rows[0]
    lines = [
        f"SciFact test ({len(data.queries)} queries; {docs} documents in {chunks} chunks), `small` "
        f"profile, top 10, one query per call. Load average at the end: {os.getloadavg()[0]:.2f}.",
        "",
        "| setting | nDCG@10 | vs default | distinct docs / top 10 | p50 ms | p90 ms | p50 vs default |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, ndcg, distinct, p50, p90 in rows:
        lines.append(
            f"| {name} | {ndcg:.4f} | {ndcg - base[1]:+.4f} | {distinct:.2f} | {p50:.1f} | {p90:.1f} | {p50 / base[3]:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
