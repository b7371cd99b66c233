"""Diverse hits on SciFact: what ``max_per_doc`` and ``mmr`` cost and gain.

For each setting (the ``small`` profile, its reranker on unless said), ``--mode quality``
searches every test query and scores the run with BEIR's protocol (self-matches dropped):
nDCG@10, distinct documents among the top 10 hits, hits returned per query; ``--mode latency``
searches the first ``--max-queries`` queries one per call and reports the median and 90th
percentile of one query's wall time. A row
with ``rerank_depth=30`` alone separates the cost of reranking the deeper pool that the
diversity settings choose from (``diversity_depth`` defaults to ``3 * top_k``) from the cost of
choosing.

Needs an ingested SciFact collection (``m3retriever ingest <scifact> --profile small``); open a
copy, never a store another process holds::

    python tests/benchmarks/bench_diversity.py --store /work/cache/scope-scifact \\
        --scifact ../shared/data/scifact --mode quality --out /tmp/diversity-quality.md
    flock /work/cache/timing.lock python tests/benchmarks/bench_diversity.py \\
        --store /work/cache/scope-scifact --scifact ../shared/data/scifact --mode latency \\
        --max-queries 15 --out /tmp/diversity-latency.md
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
NATIVE = [0.0, 0.3]
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


def batch_setting(r: Any, queries: dict[str, str], options: dict[str, Any], size: int = 50) -> dict[str, list[Any]]:
    """Hits per query, the queries searched in batches (for quality; not timed)."""
    ids = list(queries)
    hits: dict[str, list[Any]] = {}
    for i in range(0, len(ids), size):
        part = ids[i : i + size]
        for qid, result in zip(part, r.search_batch([queries[q] for q in part], top_k=10, **options)):
            hits[qid] = list(result)
    return hits


def cache_rerank(r: Any) -> None:
    """Remember the reranker's scores per (query, candidate list): the diversity settings share
    one candidate pool, so its pairs are scored once (quality only; latency never caches)."""
    score = r.reranker.score
    seen: dict[tuple[str, tuple[str, ...]], Any] = {}

    def cached(query: str, passages: Any) -> Any:
        key = (query, tuple(passages))
        if key not in seen:
            seen[key] = score(query, list(passages))
        return seen[key]

    r.reranker.score = cached


def quality(r: Any, data: Any) -> list[str]:
    """nDCG@10 (BEIR protocol), distinct documents and hits per query, for every setting."""
    cache_rerank(r)
    from m3retriever.evaluation.protocol import drop_self_matches
    from m3retriever.evaluation.runner import hits_to_run
    from m3retriever.labelled.metrics import score

    runs = [(name, lambda o=options: batch_setting(r, data.queries, o)) for name, options in SETTINGS]
    runs += [(f"no rerank, Qdrant's MMR diversity={d}", lambda d=d: native_mmr(r, data.queries, d)[0]) for d in NATIVE]
    lines = [
        "| setting | nDCG@10 | vs default | distinct docs / top 10 | hits / query |",
        "|---|---|---|---|---|",
    ]
    base = None
    for name, measure in runs:
        hits = measure()
        ndcg = score(data.qrels, drop_self_matches(hits_to_run(hits)), ["ndcg@10"])["ndcg@10"]
        base = ndcg if base is None else base
        distinct = statistics.mean(len({h.doc_id for h in hs[:10]}) for hs in hits.values())
        per_query = statistics.mean(len(hs) for hs in hits.values())
        lines.append(f"| {name} | {ndcg:.4f} | {ndcg - base:+.4f} | {distinct:.2f} | {per_query:.2f} |")
        print(lines[-1], file=sys.stderr)
    return lines


def latency(r: Any, queries: dict[str, str]) -> list[str]:
    """Median and 90th percentile of one query's wall time, for every setting."""
    runs = [(name, lambda o=options: run_setting(r, queries, o)) for name, options in SETTINGS]
    runs += [(f"no rerank, Qdrant's MMR diversity={d}", lambda d=d: native_mmr(r, queries, d)) for d in NATIVE]
    lines = ["| setting | p50 ms | p90 ms | p50 vs default |", "|---|---|---|---|"]
    base = None
    for name, measure in runs:
        _, times = measure()
        p50, p90 = statistics.median(times), statistics.quantiles(times, n=10)[8]
        base = p50 if base is None else base
        lines.append(f"| {name} | {p50:.1f} | {p90:.1f} | {p50 / base:.2f}x |")
        print(lines[-1], file=sys.stderr)
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", required=True, help="a copy of an ingested SciFact store (small profile)")
    p.add_argument("--collection", default="scifact")
    p.add_argument("--scifact", default=str(HERE.parents[2] / "shared" / "data" / "scifact"))
    p.add_argument("--mode", choices=("quality", "latency"), default="quality")
    p.add_argument("--max-queries", type=int, default=None, help="first N test queries (default: all)")
    p.add_argument("--out", default=None, help="markdown file to write (overwritten)")
    args = p.parse_args(argv)

    from m3retriever import Config, Retriever
    from m3retriever.labelled.data import load_beir

    data = load_beir(args.scifact, split="test", max_queries=args.max_queries)
    load_before = os.getloadavg()[0]
    with Retriever(Config(location=args.store, collection=args.collection, profile="small")) as r:
        chunks, docs = r.count(), r.count({"chunk_index": 0})
        for text in list(data.queries.values())[:5]:  # warm the models
            r.search(text)
        table = quality(r, data) if args.mode == "quality" else latency(r, data.queries)
    how = "queries searched in batches of 50" if args.mode == "quality" else "one query per call"
    head = (
        f"SciFact test, {len(data.queries)} queries ({docs} documents in {chunks} chunks), `small` "
        f"profile, top 10, {how}; load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after."
    )
    text = "\n".join([head, "", *table]) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
