"""Markdown for ``bench_production``'s results, with the FLOP arithmetic beside the figures.

    python tests/benchmarks/bench_production_report.py /tmp/m3r-production.json > /tmp/production.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

LAYERS, HIDDEN, FFN = 24, 1024, 4096
MATMUL_PARAMS = LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)  # 302M; embeddings are lookups


def gflop(tokens: int) -> float:
    """Forward FLOPs of one sequence of ``tokens`` tokens through XLM-R large, in GFLOP.

    ``2 x matmul parameters`` per token, plus attention's ``QK^T`` and ``AV``:
    ``4 x tokens x hidden`` per token and layer.
    """
    return tokens * (2 * MATMUL_PARAMS + 4 * LAYERS * tokens * HIDDEN) / 1e9


def _ms(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:.1f}"


def _rate(count: float, seconds: float) -> str:
    return f"{count / seconds:.2f}" if count / seconds < 10 else f"{count / seconds:,.0f}"


def rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, torch fp32, ONNX int8, FLOPs) rows; each cell ``wall (CPU-seconds / 2)``."""
    t, o = res.get("torch", {}), res.get("onnx", {})
    out: list[tuple[str, str, str, str]] = []

    def cell(m: dict[str, Any] | None, fmt: Any) -> str:
        if not m:
            return "-"
        return f"{fmt(m['wall_s'])} ({fmt(m['cpu_s'] / 2)})"

    ms = lambda s: _ms(1000 * s)  # noqa: E731
    out.append(("query encoding, 32 tokens (ms)", cell(t.get("query_encode"), ms), cell(o.get("query_encode"), ms), f"{gflop(32):.0f} GFLOP"))
    ing = t.get("ingest")
    chunks = o.get("encode_chunks")
    out.append((
        "ingest, 256-token chunks (tokens/s)",
        cell(ing, lambda s: _rate(ing["tokens"], s)) + " end to end" if ing else "-",
        cell(chunks, lambda s: _rate(chunks["tokens"], s)) + " encoder only" if chunks else "-",
        f"{gflop(256) / 256:.2f} GFLOP/token",
    ))
    for length in (128, 256, 512, 1024):
        tp, op = t.get("pairs", {}).get(str(length)), o.get("pairs", {}).get(str(length))
        out.append((
            f"cross-encoder, {length}-token pairs (pairs/s)",
            cell(tp, lambda s, b=(tp or {}).get("batch", 1): _rate(b, s)),
            cell(op, lambda s: _rate(1, s)),
            f"{gflop(length):.0f} GFLOP/pair",
        ))
    for depth, (tw, tc), (ow, oc) in e2e(res):
        pair = 32 + 256
        out.append((
            f"end-to-end query, rerank depth {depth} (ms)",
            f"{_ms(tw)} ({_ms(tc)})" if tw else "-",
            f"{_ms(ow)} ({_ms(oc)})" if ow else "-",
            f"{gflop(32) + depth * gflop(pair):.0f} GFLOP",
        ))
    return out


def e2e(res: dict[str, Any]) -> list[tuple[int, tuple[float, float], tuple[float, float]]]:
    """End-to-end query ms per depth, (wall, CPU/2), for torch and ONNX int8.

    torch: the measured ``Retriever.search`` at depth 10 (encode + store + rerank); other depths
    add or remove that call's per-pair rerank time. ONNX int8: composed from its own query
    encoding and per-pair time at 288 tokens plus the store query of the torch run.
    """
    t, o = res.get("torch", {}), res.get("onnx", {})
    out = []
    measured = t.get("e2e", {})
    base = measured.get("10") or (next(iter(measured.values())) if measured else None)
    base_depth = 10 if "10" in measured else (int(next(iter(measured))) if measured else 0)
    for depth in (10, 20):
        tw = tc = ow = oc = 0.0
        if base:
            own = measured.get(str(depth))
            if own:
                tw = own["total"]
                tc = 1000 * own["cpu_s"] / 2
            else:
                per_pair = base["rerank"] / base_depth
                tw = base["encode"] + base["search"] + depth * per_pair
                tc = (1000 * base["cpu_s"] / 2) * tw / base["total"]
        pair = o.get("pairs", {}).get("288")
        if pair and o.get("query_encode"):
            store = t.get("store_query_ms", 0.0)
            ow = 1000 * (o["query_encode"]["wall_s"] + depth * pair["wall_s"]) + store
            oc = 1000 * (o["query_encode"]["cpu_s"] + depth * pair["cpu_s"]) / 2 + store
        out.append((depth, (tw, tc), (ow, oc)))
    return out


def markdown(res: dict[str, Any], command: str) -> str:
    """The section of docs/benchmarks.md for ``res`` (``bench_production``'s JSON)."""
    lines = ["| what | torch fp32 | ONNX int8 | forward FLOPs |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(res)]
    mv = res.get("multivector", {})
    mv_lines = []
    for cands in ("50", "100"):
        if cands in mv:
            m = mv[cands]
            flops = int(cands) * mv["tokens_per_chunk"] * mv["query_tokens"] * HIDDEN * 2 / 1e9
            mv_lines.append(
                f"| {cands} | {m['fused_ms']:.2f} | {m['with_maxsim_ms']:.0f} ({m['with_maxsim_cpu_ms']:.0f} CPU) | "
                f"{m['with_maxsim_ms'] - m['fused_ms']:.0f} | {flops:.2f} GFLOP |"
            )
    t = res.get("torch", {})
    head = t.get("colbert_head")
    loads = ", ".join(f"{p}: {res[p].get('load_before', '?')} -> {res[p].get('load_after', '?')}" for p in ("torch", "onnx") if p in res)
    text = [
        f"Reproduce: `{command}`",
        "",
        f"Load average (1, 5, 15 min) before -> after: {loads}.",
        "",
        *lines,
        "",
    ]
    if mv_lines:
        text += [
            f"Multivector stage, engine side (Qdrant Edge, {mv['chunks']:,} chunks x {mv['tokens_per_chunk']} "
            f"random 1024-d token vectors, {mv['query_tokens']}-token query; ms, median of 10 queries):",
            "",
            "| fused candidates | prefetch + RRF | + MaxSim rescoring | MaxSim stage | MaxSim FLOPs |",
            "|---|---|---|---|---|",
            *mv_lines,
            "",
        ]
    if head:
        text += [
            f"Multivector stage, encoder side: the ColBERT head (`Linear(1024, 1024)` over {head['tokens']} token "
            f"states) takes {1000 * head['wall_s']:.0f} ms wall ({1000 * head['cpu_s']:.0f} ms CPU) for "
            f"{2 * HIDDEN * HIDDEN * head['tokens'] / 1e9:.1f} GFLOP, against {gflop(512):.0f} GFLOP for the "
            "512-token forward pass that makes those states.",
            "",
        ]
    return "\n".join(text)


if __name__ == "__main__":  # pragma: no cover
    data = json.loads(Path(sys.argv[1]).read_text())
    print(markdown(data, " ; ".join(sorted({data[p]["command"] for p in data if "command" in data[p]}))))
