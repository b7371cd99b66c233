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
]


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
        for name, options in SETTINGS:
            hits, times = run_setting(r, data.queries, options)
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
