"""Run every benchmark and write a markdown report.

    python tests/benchmarks/run_all.py --out docs/benchmarks.md            # full (hours on 2 cores)
    python tests/benchmarks/run_all.py --smoke --out /tmp/bench-smoke.md   # tiny, well under a minute

Sections: SciFact quality (our stages and peer pipelines), store speed (synthetic vectors,
Qdrant Edge vs qdrant-client local mode), ingest throughput, end-to-end query latency, the
cross-encoder's cost against the pair length, the MCP server under concurrent clients
(throughput, latency, memory; ``bench_mcp``), re-ingest of unchanged documents
(``bench_reingest``), the production models' speed with random weights (``production``:
``bench_production``, XLM-R large in torch fp32 and ONNX int8; never part of ``--smoke``),
and fine-tuning all-MiniLM-L6-v2 on SciFact train (``bench_finetune``, on the store the
quality section fills).
``--only`` picks sections. The SciFact collection is cached in ``--store`` (content-hash skip
makes re-runs cheap); SciFact is read from ``../shared/data/scifact`` (``--scifact``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import bench_mcp  # noqa: E402
import bench_pipeline  # noqa: E402
import bench_production  # noqa: E402
import bench_reingest  # noqa: E402
import bench_store  # noqa: E402

SECTIONS = ("quality", "store", "ingest", "latency", "rerank", "mcp", "reingest", "production", "finetune")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def machine() -> str:
    import importlib.metadata as md

    def v(p: str) -> str:
        try:
            return md.version(p)
        except md.PackageNotFoundError:
            return "-"

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}, qdrant-edge-py {v('qdrant-edge-py')}, qdrant-client "
        f"{v('qdrant-client')}, onnxruntime {v('onnxruntime')}, torch {v('torch')}, ranx {v('ranx')}, "
        f"langchain-qdrant {v('langchain-qdrant')}, llama-index-vector-stores-qdrant "
        f"{v('llama-index-vector-stores-qdrant')}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, no peers, no timing targets")
    ap.add_argument("--only", help=f"comma-separated sections from {','.join(SECTIONS)}")
    ap.add_argument("--scifact", default=str(bench_pipeline.DATA))
    ap.add_argument("--store", default="/tmp/m3r-bench/scifact-small", help="cached SciFact store")
    ap.add_argument("--collection", default="scifact")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--sizes", default="10000,100000", help="store sizes (chunks)")
    ap.add_argument("--store-queries", type=int, default=200)
    ap.add_argument("--ingest-docs", type=int, default=200)
    ap.add_argument("--latency-queries", type=int, default=50)
    ap.add_argument("--depths", default="10,20,50")
    ap.add_argument("--rerank-depth", type=int, default=None, help="override the rerank depth (quality)")
    ap.add_argument(
        "--subset-docs",
        type=int,
        default=None,
        help="quality on a sub-corpus: the first N SciFact documents plus the evaluated queries' relevant ones",
    )
    bench_production.add_arguments(ap, prefix="production-")
    args = ap.parse_args(argv)

    sections = args.only.split(",") if args.only else list(SECTIONS)
    if args.smoke and "production" in sections:  # XLM-R large: ~5 GB of RAM, minutes per figure
        log("[production] not part of --smoke; skipped")
        sections.remove("production")
    command = "python tests/benchmarks/run_all.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    scifact = Path(args.scifact)
    out_parts: list[str] = []
    results: dict = {}
    t_start = time.perf_counter()

    from m3retriever import FingerprintMismatchError, Retriever, load_config, open_collection, renormalize

    def make(location: str, **kw: object) -> Retriever:
        config = load_config(env={}, profile="small", location=location, collection=args.collection, **kw)
        try:
            return Retriever(config)
        except FingerprintMismatchError:  # a cached store from before the BM25 parameters were recorded
            with open_collection(config) as collection:
                log(f"[store] {renormalize(collection)}")
            return Retriever(config)

    have_data = (scifact / "corpus.jsonl.gz").is_file()
    if args.smoke:
        import tempfile

        smoke_dir = tempfile.mkdtemp(prefix="m3r-bench-smoke-")
        sizes = [300]
        if have_data:
            docs, data = bench_pipeline.scifact_subset(scifact, n_queries=2, n_docs=6, split=args.split)
        store_loc = str(Path(smoke_dir) / "store")
        depths = [2]
        lat_q = 2
        ingest_docs = 3
        if args.rerank_depth is None:
            args.rerank_depth = 2
        peers = False
    else:
        sizes = [int(s) for s in args.sizes.split(",")]
        docs = None
        if args.subset_docs and have_data:
            docs, data = bench_pipeline.scifact_subset(
                scifact, n_queries=args.max_queries or 300, n_docs=args.subset_docs, split=args.split
            )
        store_loc = args.store
        depths = [int(d) for d in args.depths.split(",")]
        lat_q = args.latency_queries
        ingest_docs = args.ingest_docs
        peers = not args.no_peers

    need_scifact = any(s in sections for s in ("quality", "ingest", "latency", "rerank"))
    if need_scifact and not have_data:
        msg = f"SciFact not found at {scifact} (pass --scifact): quality, ingest and latency sections skipped."
        out_parts.append(f"## SciFact sections\n\n{msg}\n")
        sections = [s for s in sections if s in ("store", "mcp", "reingest")]  # these need no SciFact

    if any(s in sections for s in ("quality", "latency", "rerank")):
        from m3retriever.labelled.data import load_beir

        r = make(store_loc)
        try:
            t = time.perf_counter()
            if docs is not None:
                rep = r.ingest(docs)
            else:
                data = load_beir(scifact, args.split, max_queries=args.max_queries)
                rep = r.ingest_path(scifact, show_progress=False)
            r.optimize()
            log(f"[scifact] ingest: {rep} in {time.perf_counter() - t:.0f}s")
            if "quality" in sections:
                md, res = bench_pipeline.quality(
                    r, data, docs, peers, command + "  # section: quality", log, rerank_depth=args.rerank_depth,
                    corpus_note=(f"sub-corpus of {len(docs)} documents (the first {args.subset_docs} plus every document judged relevant to the evaluated queries), not the full 5,183" if docs is not None and not args.smoke else None),
                )
                out_parts.append(md)
                results["quality"] = res
            if "latency" in sections:
                qs = list(data.queries.values())[:lat_q]
                md, res = bench_pipeline.query_latency(r, qs, depths, command + "  # section: latency", log)
                out_parts.append(md)
                results["latency"] = res
            if "rerank" in sections:
                qs = list(data.queries.values())[:lat_q]
                md, res = bench_pipeline.rerank_lengths(
                    r, qs, [64] if args.smoke else [512, 256, 192, 128], 2 if args.smoke else 20,
                    command + "  # section: rerank", log,
                )
                out_parts.append(md)
                results["rerank"] = res
        finally:
            r.close()

    if "store" in sections:
        res = bench_store.run(sizes, ["edge", "local"], 20 if args.smoke else args.store_queries)
        notes = []
        if not args.smoke and 1_000_000 not in sizes:
            notes.append(
                "1M chunks not run: 1M x 1024-d float32 is 4 GB of vectors plus the HNSW build, beyond "
                "this 2-core machine's time budget; run `--sizes 1000000 --only store` on a larger box."
            )
        notes.append(
            f"qdrant-client local mode is measured up to {bench_store.LOCAL_MAX_N:,} points with at most "
            f"{bench_store.LOCAL_MAX_QUERIES} queries: it is a brute-force Python implementation, meant for tests."
        )
        out_parts.append(bench_store.markdown(res, command + "  # section: store", notes))
        results["store"] = res

    if "ingest" in sections:
        from m3retriever.ingest.sources import read_beir_corpus

        idocs = []
        for d in read_beir_corpus(scifact):
            idocs.append({"doc_id": d.doc_id, "text": d.text})
            if len(idocs) >= ingest_docs:
                break
        md, res = bench_pipeline.ingest_throughput(lambda loc: make(loc), idocs, command + "  # section: ingest", log)
        out_parts.append(md)
        results["ingest"] = res

    if "mcp" in sections:
        md, res = bench_mcp.run(args.smoke, command + "  # section: mcp", log, data=scifact)
        out_parts.append(md)
        results["mcp"] = res

    if "reingest" in sections:
        n, runs = (200, 1) if args.smoke else (10_000, 5)
        md, res = bench_reingest.run(n, runs, command + "  # section: reingest", log)
        out_parts.append(md)
        results["reingest"] = res

    if "production" in sections:
        from bench_production_report import markdown

        res = bench_production.run(args.parts.split(","), args, command + "  # section: production")
        out_parts.append("## Production models' speed (random weights, CPU)\n\n" + markdown(res, command + "  # section: production"))
        results["production"] = res

    if "finetune" in sections and have_data and not args.smoke:  # ~1 h on 2 cores: bench_finetune.py
        import bench_finetune

        model, out_md = str(Path(args.store).parent / "finetune-minilm"), str(Path(args.store).parent / "finetune.md")
        common = ["--store", args.store, "--scifact", str(scifact), "--model", model]
        bench_finetune.main(["--stage", "train", *common, "--loss", "cached-mnrl", "--heldout-pool", "10"])
        bench_finetune.main(["--stage", "eval", *common, "--out", out_md])
        out_parts.append(Path(out_md).read_text())

    header = [
        "# Benchmarks" + (" (smoke run: tiny sizes, figures meaningless)" if args.smoke else ""),
        "",
        f"Generated by `{command}` on {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} in "
        f"{time.perf_counter() - t_start:.0f}s. Machine: {machine()}. Medians unless stated; "
        "ratios are from the same run.",
        "",
    ]
    text = "\n".join(header) + "\n".join(out_parts)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))
    log(f"wrote {out} ({time.perf_counter() - t_start:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
