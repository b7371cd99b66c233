"""Re-ingest of unchanged documents: wall time and store calls.

Ingests N small synthetic documents into an embedded (Qdrant Edge) store with the tiny random
BGE-M3 model from ``tests/tinymodels.py`` (offline, a few seconds to build), then ingests the
same documents again ``--runs`` times. Every document is unchanged, so a re-ingest encodes
nothing: its cost is validating and hashing the input and the unchanged checks against the
store. The store calls of one extra re-ingest are counted and timed by wrapping the store's
methods (that run is left out of the median).

Run alone: ``python tests/benchmarks/bench_reingest.py --docs 10000 --runs 5``.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tinymodels
sys.path.insert(0, str(HERE.parents[1] / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

STORE_METHODS = ("retrieve", "count", "count_by_value", "scroll", "delete_by_filter", "delete_ids", "upsert", "query")
WORDS = ("cat", "mat", "garden", "river", "market", "vector", "search", "model", "paris", "rain")


def documents(n: int) -> list[dict[str, Any]]:
    """Small synthetic texts (one or two chunks each at 48 tokens per chunk)."""
    docs = []
    for i in range(n):
        words = " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(8 + (i % 4) * 12))
        docs.append({"doc_id": f"doc-{i}", "text": f"Document {i}: {words}.", "metadata": {"i": i}})
    return docs


def _count_calls(store: Any) -> tuple[collections.Counter, collections.Counter]:
    """Wrap the store's methods on the instance: calls and seconds per method (a scroll's
    generator is not wrapped, so it counts once and its pages are not timed)."""
    calls: collections.Counter = collections.Counter()
    seconds: collections.Counter = collections.Counter()

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - t

        return counted

    for name in STORE_METHODS:
        if hasattr(store, name):  # count_by_value is newer than the benchmark's first run
            setattr(store, name, wrap(name, getattr(store, name)))
    return calls, seconds


def run(n_docs: int, runs: int, command: str, log: Callable[[str], None]) -> tuple[str, dict[str, Any]]:
    """Measure; returns the markdown section and the raw figures."""
    from m3retriever import Retriever, load_config
    from tinymodels import build_tiny_bge_m3

    tmp = Path(tempfile.mkdtemp(prefix="m3r-reingest-"))
    try:
        model = build_tiny_bge_m3(tmp / "tiny-bge-m3")
        settings = dict(
            profile="bge-m3", dense_model=str(model), reranker="none", device="cpu", batch_size=64,
            max_length=128, chunk_tokens=48, chunk_overlap=8, location=str(tmp / "store"),
        )
        docs = documents(n_docs)
        with Retriever(load_config(env={}, **settings)) as r:
            t = time.perf_counter()
            first = r.ingest(docs)
            t_first = time.perf_counter() - t
            log(f"[reingest] first ingest: {first.documents} docs, {first.chunks_written} chunks in {t_first:.1f}s")
            times = []
            for i in range(runs):
                t = time.perf_counter()
                rep = r.ingest(docs)
                times.append(time.perf_counter() - t)
                assert rep.skipped == n_docs, rep
                log(f"[reingest] run {i + 1}: {times[-1]:.2f}s")
            calls, seconds = _count_calls(r.store)
            r.ingest(docs)
        res = {
            "docs": n_docs,
            "chunks": first.chunks_written,
            "doc_batch": 256,
            "first_ingest_s": t_first,
            "reingest_s": times,
            "median_s": statistics.median(times),
            "store_calls": dict(calls),
            "store_s": sum(seconds.values()),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return markdown(res, command), res


def markdown(res: dict[str, Any], command: str) -> str:
    calls = ", ".join(f"{k} {v:,}" for k, v in sorted(res["store_calls"].items())) or "none"
    return "\n".join(
        [
            "## Re-ingest of unchanged documents (embedded store)",
            "",
            f"Reproduce: `{command}`",
            "",
            f"{res['docs']:,} small synthetic documents ({res['chunks']:,} chunks), tiny random "
            "BGE-M3 (offline), Qdrant Edge; every document unchanged, so nothing is encoded or "
            f"written. Median of {len(res['reingest_s'])} runs.",
            "",
            "| documents | re-ingest s (median) | docs/s | store calls per re-ingest | s in store calls |",
            "|---|---|---|---|---|",
            f"| {res['docs']:,} | {res['median_s']:.2f} | {res['docs'] / res['median_s']:,.0f} | {calls} "
            f"| {res['store_s']:.3f} |",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    command = f"python tests/benchmarks/bench_reingest.py --docs {args.docs} --runs {args.runs}"
    md, _ = run(args.docs, args.runs, command, lambda m: print(m, file=sys.stderr, flush=True))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
