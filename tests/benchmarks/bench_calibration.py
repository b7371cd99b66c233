"""Calibration of the ``small`` profile's confidence: fitted on SciFact train, measured on
held-back queries of every collection.

Candidates and reading are those of ``bench_rerank_window.py`` (chunks as ingest cuts them, the
top ``--depth`` chunks of a BM25 first stage, reranked by ms-marco-MiniLM-L-12-v2 int8 through
:func:`m3retriever.search.reading.read_and_score` with ``--window``). A candidate is relevant when
its document is judged relevant. The calibration (``confidence_slope``, ``confidence_bias``) is
fitted by :func:`m3retriever.labelled.calibration.fit_platt` on SciFact's *train* queries only;
each collection's test queries are held back and report the expected calibration error (ECE,
10 bins) of the model's own ``sigmoid(logit)`` and of the fitted confidence, and the
reliability diagram's bins.

    python tests/benchmarks/bench_calibration.py --data ../shared/data \
        --collections scifact xquad-long/en xquad-r/en xquad-r/de --max-queries 300 \
        --out /tmp/calibration.md --plot docs/data/reliability-small.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from bench_rerank_window import chunks_of, first_stage, load

from m3retriever.encoders.base import EncoderOptions
from m3retriever.encoders.bm25 import BM25Encoder
from m3retriever.labelled.calibration import Calibration, fit_platt, reliability
from m3retriever.rerankers.base import RerankerOptions
from m3retriever.rerankers.onnx_cross import OnnxCrossEncoderReranker
from m3retriever.search.matching import Matcher
from m3retriever.search.reading import read_and_score
from m3retriever.search.stage_scores import sigmoid


def pairs(
    data: Path, name: str, split: str, depth: int, window: str, max_queries: int | None, reranker: Any
) -> tuple[np.ndarray, np.ndarray]:
    """(logit, relevant) of every reranked candidate of a collection's ``split`` queries."""
    docs, queries, qrels = load(data, name, split)
    if max_queries:
        queries = dict(list(queries.items())[:max_queries])
    chunks = chunks_of(docs)
    candidates = first_stage(chunks, queries, depth)
    analyze = BM25Encoder(EncoderOptions()).analyze_words
    logits: list[float] = []
    labels: list[bool] = []
    for qid, q in queries.items():
        texts = [chunks[i][1] for i, _ in candidates[qid]]
        reading = read_and_score(reranker, q, texts, window, Matcher(q, analyze))  # type: ignore[arg-type]
        for (i, _), logit in zip(candidates[qid], reading.logits):
            logits.append(float(logit))
            labels.append(qrels.get(qid, {}).get(chunks[i][0], 0) > 0)
    return np.array(logits), np.array(labels)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--collections", nargs="+", default=["scifact", "xquad-long/en", "xquad-r/en"])
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--window", default="match")
    ap.add_argument("--max-queries", type=int, default=300, help="held-back queries per collection")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path, help="reliability diagrams (PNG)")
    args = ap.parse_args(argv)
    reranker = OnnxCrossEncoderReranker(RerankerOptions(max_length=128))
    x, y = pairs(args.data, "scifact", "train", args.depth, args.window, None, reranker)
    fitted = fit_platt(x, y)
    print(f"fitted on SciFact train: {fitted}", file=sys.stderr, flush=True)
    rows = []
    for name in args.collections:
        hx, hy = pairs(args.data, name, "test", args.depth, args.window, args.max_queries, reranker)
        raw, cal = reliability(sigmoid(hx), hy), reliability(fitted.apply(hx), hy)
        rows.append({"collection": name, "pairs": int(hx.size), "relevant": int(hy.sum()), "raw": raw.as_dict(), "fitted": cal.as_dict()})
        print(f"{name}: ECE raw {raw.ece:.4f} fitted {cal.ece:.4f}", file=sys.stderr, flush=True)
    md = table(fitted, rows, args)
    print(md)
    if args.out:
        args.out.write_text(md + "\n")
    if args.json:
        args.json.write_text(json.dumps({"slope": fitted.slope, "bias": fitted.bias, "rows": rows}, indent=1))
    if args.plot:
        plot(rows, args.plot)
    return 0


def table(fitted: Calibration, rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"Fitted on SciFact train ({fitted.pairs} reranked candidates, {fitted.positives} relevant; window "
        f"`{args.window}`, depth {args.depth}): confidence_slope = {fitted.slope:.4f}, confidence_bias = {fitted.bias:.4f}.",
        "",
        "| collection (test queries, held back) | candidates (relevant) | ECE sigmoid(logit) | ECE confidence |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['collection']} | {r['pairs']} ({r['relevant']}) | {r['raw']['ece']:.4f} | {r['fitted']['ece']:.4f} |"
        )
    lines += ["", "Reliability diagram (confidence bins: hits, mean confidence, share relevant):", ""]
    lines += ["| collection | " + " | ".join(f"[{k / 10:.1f}, {(k + 1) / 10:.1f})" for k in range(10)) + " |"]
    lines += ["|---|" + "---|" * 10]
    for r in rows:
        by = {round(b["low"] * 10): b for b in r["fitted"]["bins"]}
        cells = [
            f"{by[k]['count']}: {by[k]['mean_confidence']:.2f} / {by[k]['relevant_share']:.2f}" if k in by else "-"
            for k in range(10)
        ]
        lines.append(f"| {r['collection']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.8), dpi=110, sharey=True)
    for ax, kind, title in ((axes[0], "raw", "sigmoid(logit)"), (axes[1], "fitted", "confidence (fitted on SciFact train)")):
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
        for r in rows:
            bins = r[kind]["bins"]
            ax.plot([b["mean_confidence"] for b in bins], [b["relevant_share"] for b in bins], marker="o",
                    label=f"{r['collection']} (ECE {r[kind]['ece']:.3f})")  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("confidence (bin mean)", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=6)
    axes[0].set_ylabel("share relevant", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    sys.exit(main())
