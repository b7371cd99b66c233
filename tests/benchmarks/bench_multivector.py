"""Bytes per chunk of the late-interaction (ColBERT) multivector, and what rescoring reads.

    python tests/benchmarks/bench_multivector.py --chunks 200 --tokens 300 --out /tmp/mv.md

Writes ``--chunks`` points of random L2-normalised ``(--tokens, 1024)`` float32 multivectors
(BGE-M3's size; random values store like real ones) into a Qdrant Edge collection built
exactly as m3retriever builds one (``CollectionSpec.multivector_dim``: MaxSim, no HNSW,
originals on disk, int8 scalar quantization), once per variant below,
optimises each (the segments become indexed, so the quantized copy is built), and reports:

* disk bytes per chunk of the shard once closed (allocated blocks, WAL included, and without
  the WAL; until the shard is closed the segment an optimisation replaced stays on disk too);
* the bytes per chunk of the original and of the quantized vector files;
* whether the rescoring of ``--candidates`` fused candidates into ``--limit`` hits returns the
  exact float32 MaxSim (the largest difference to numpy over 20 queries of 32 token vectors),
  and its median time, as m3retriever sends it (the quantized copy picks the hits, the
  original vectors score them), with the quantized scores alone, and without quantization.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from m3retriever.ingest import point_id  # noqa: E402
from m3retriever.store.edge import EdgeStore  # noqa: E402
from m3retriever.store.schema import DENSE, Branch, CollectionSpec, HybridQuery, Rescore, StoredPoint  # noqa: E402

DIM = 1024
QUERY_TOKENS = 32


def _unit(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.normal(size=shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _blocks(path: Path, skip: str | None = None) -> int:
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file() and not (skip and skip in f.parts))


def _files(path: Path, word: str) -> int:
    """Allocated bytes of the files whose path names ``word`` (Edge preallocates mmap files
    sparsely, so their apparent sizes overstate what is stored)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file() and word in str(f.relative_to(path)))


VARIANTS = {
    "int8, original-vector scores (m3retriever)": "as built",
    "int8, quantized scores": "no rescore",
    "none": "no quantization",
}


def _patch(store: EdgeStore, variant: str) -> None:
    """Change the collection or the request the way ``variant`` says (the default: none)."""
    kit = store.tr.kit
    q = kit.q
    if variant == "no quantization":
        kit.multivector_params = lambda size: q.EdgeVectorParams(  # type: ignore[method-assign]
            size=size,
            distance=q.Distance.Dot,
            multivector_config=q.MultiVectorConfig(q.MultiVectorComparator.MaxSim),
            hnsw_config=q.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000),
            memory=q.Memory.Cold,
        )
    elif variant == "no rescore":
        kit.rescore_request = lambda prefetch, vector, using, limit, with_vector: q.QueryRequest(  # type: ignore[method-assign]
            limit=limit, prefetches=[prefetch], query=q.Query.Nearest(vector, using=using), with_payload=True
        )


def run(chunks: int, tokens: int, candidates: int, limit: int, variant: str, root: Path) -> dict[str, float]:
    rng = np.random.default_rng(0)
    store = EdgeStore(root)
    _patch(store, variant)
    spec = CollectionSpec(name="mv", dense_dim=DIM, sparse=False, multivector_dim=DIM, fingerprint={"bench": 1})
    store.ensure_collection(spec)
    docs = {}
    for start in range(0, chunks, 10):
        batch = []
        for i in range(start, min(chunks, start + 10)):
            mv = _unit(rng, (tokens, DIM))
            pid = point_id("doc", i)
            docs[pid] = mv
            batch.append(StoredPoint(id=pid, payload={"i": i}, dense=_unit(rng, (DIM,)).tolist(), multivector=mv))
        store.upsert("mv", batch)
    store.flush("mv")
    store.optimize("mv")
    out = {}
    diffs, times = [], []
    for _ in range(20):
        qv = _unit(rng, (QUERY_TOKENS, DIM))
        hq = HybridQuery(
            branches=(Branch(DENSE, _unit(rng, (DIM,)).tolist(), limit=candidates),),
                limit=limit,
            late_interaction=Rescore(qv, candidates=candidates),
        )
        t0 = time.perf_counter()
        records = store.query("mv", [hq])[0]
        times.append(time.perf_counter() - t0)
        diffs += [abs(r.score - float((qv @ docs[r.id].T).max(axis=1).sum())) for r in records]
    out["max_diff"] = max(diffs)
    out["p50_ms"] = statistics.median(times) * 1000
    store.close()  # the optimizer's replaced segment is removed only now: measure after it
    shard = root / "mv"
    out["disk"] = _blocks(shard) / chunks
    out["disk_no_wal"] = _blocks(shard, skip="wal") / chunks
    out["vectors"] = _files(shard, "vector_storage-colbert/vectors/") / chunks
    out["quantized"] = _files(shard, "vector_storage-colbert/quantized.data") / chunks
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--limit", type=int, default=58, help="hits kept after rescoring (rerank depth 50 + 8)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    raw = args.tokens * DIM * 4
    rows = []
    for name, variant in VARIANTS.items():
        root = Path(tempfile.mkdtemp(prefix="m3r-mv-"))
        try:
            r = run(args.chunks, args.tokens, args.candidates, args.limit, variant, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        mb = 1e6
        rows.append(
            f"| {name} | {r['disk'] / mb:.2f} | {r['disk_no_wal'] / mb:.2f} "
            f"| {r['vectors'] / mb:.2f} | {r['quantized'] / mb:.3f} | {r['max_diff']:.1e} | {r['p50_ms']:.0f} |"
        )
    cmd = "python " + " ".join([os.path.relpath(__file__, HERE.parents[1]), *sys.argv[1:]])
    load = os.getloadavg()
    text = "\n".join(
        [
            f"Reproduce: `{cmd}`",
            "",
            f"{args.chunks} chunks of {args.tokens} token vectors x {DIM} float32 "
            f"(raw {raw / 1e6:.2f} MB per chunk); rescoring {args.candidates} candidates with "
            f"{QUERY_TOKENS} query vectors into {args.limit} hits, 20 queries. Load average "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.",
            "",
            "| quantization | disk MB/chunk (WAL incl.) | disk MB/chunk (no WAL) | original vectors MB/chunk "
            "| quantized MB/chunk | max |score - float32 MaxSim| | rescoring p50 ms |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
