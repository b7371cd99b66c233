"""Candidate search defaults on several collections: each against its best single branch.

For one ingested BEIR collection, each branch's top 100 is fetched once per query (tune's
``BranchCache``), the RRF fusion of each candidate setting is recomputed locally with the
engine's formula, the reranker's logits are computed once per (query, chunk), and each candidate's
fused and reranked per-query nDCG@10 is tested against the best single branch (paired
randomisation test, :mod:`m3retriever.evaluation.stats`). The branch rankings and logits are kept
in a JSON cache file so a second run costs nothing.

Also measured (label-free, from the branch rankings alone): ``agree`` weights each branch by how
much its top 10 overlaps the other branches' top 10 on the same queries (collection level).

    python tests/benchmarks/bench_defaults.py ../shared/data/scifact --split train \
        --location /tmp/m3r/scifact-small --collection scifact --cache /tmp/m3r/cand-scifact-train.json

Prints a markdown table (one row per candidate) and writes it to ``--out`` when given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from m3retriever.config import Config
from m3retriever.evaluation.protocol import drop_self_matches
from m3retriever.evaluation.runner import ranking_to_scores
from m3retriever.evaluation.stats import paired_randomisation, versus_best_branch
from m3retriever.evaluation.tune_sweep import BRANCHES, BranchCache, _final_ranking, hits_to_ranking_ids
from m3retriever.labelled.data import load_dataset
from m3retriever.labelled.metrics import per_query
from m3retriever.retriever import Retriever

DEPTH = 100

# (name, rrf_k, (dense, sparse, bm25) weights or "agree", rerank_weight); rerank depth 10
CANDIDATES: list[tuple[str, int, Any, float]] = [
    ("old: k2 1/.25/.5 rw.2", 2, (1.0, 0.25, 0.5), 0.2),
    ("k2 1/.25/.5 rw.5", 2, (1.0, 0.25, 0.5), 0.5),
    ("k10 1/.5/.5 rw.2", 10, (1.0, 0.5, 0.5), 0.2),
    ("k10 1/.5/.5 rw.5", 10, (1.0, 0.5, 0.5), 0.5),
    ("k10 1/.5/.5 rw.3", 10, (1.0, 0.5, 0.5), 0.3),
    ("k20 1/.5/.5 rw.3", 20, (1.0, 0.5, 0.5), 0.3),
    ("k30 1/.5/.5 rw.2", 30, (1.0, 0.5, 0.5), 0.2),
    ("k30 1/.5/.5 rw.3", 30, (1.0, 0.5, 0.5), 0.3),
    ("k30 1/.5/.5 rw.5", 30, (1.0, 0.5, 0.5), 0.5),
    ("k60 1/.5/.5 rw.2", 60, (1.0, 0.5, 0.5), 0.2),
    ("k60 1/.5/.5 rw.3", 60, (1.0, 0.5, 0.5), 0.3),
    ("k60 1/.5/.5 rw.5", 60, (1.0, 0.5, 0.5), 0.5),
    ("k60 1/.25/.5 rw.2", 60, (1.0, 0.25, 0.5), 0.2),
    ("k60 1/.25/.5 rw.3", 60, (1.0, 0.25, 0.5), 0.3),
    ("k60 1/.5/1 rw.3", 60, (1.0, 0.5, 1.0), 0.3),
    ("k60 1/.5/1 rw.5", 60, (1.0, 0.5, 1.0), 0.5),
    ("k60 1/1/1 rw.2", 60, (1.0, 1.0, 1.0), 0.2),
    ("k60 1/1/1 rw.5", 60, (1.0, 1.0, 1.0), 0.5),
    ("k60 1/0/1 rw.2", 60, (1.0, 0.0, 1.0), 0.2),
    ("k60 1/0/1 rw.3", 60, (1.0, 0.0, 1.0), 0.3),
    ("k60 1/0/1 rw.5", 60, (1.0, 0.0, 1.0), 0.5),
    ("k60 agree rw.3", 60, "agree", 0.3),
    ("k60 agree rw.5", 60, "agree", 0.5),
    ("k60 1/.5/.5 rw1", 60, (1.0, 0.5, 0.5), 1.0),
]
# The same, with the weights adapted per query (search.adaptive, m3retriever.search.adaptive)
ADAPTIVE = {"k10 1/.5/.5 rw.3", "k10 1/.5/.5 rw.5", "k60 1/.5/.5 rw.3", "k60 1/1/1 rw.2"}
# Fused by standardised scores (search.fusion = "zscore", m3retriever.search.fusion; no k)
ZSCORE: list[tuple[str, int, Any, float]] = [
    ("zscore 1/.5/.5 rw.2", 0, (1.0, 0.5, 0.5), 0.2),
    ("zscore 1/.5/.5 rw.3", 0, (1.0, 0.5, 0.5), 0.3),
    ("zscore 1/.5/.5 rw.5", 0, (1.0, 0.5, 0.5), 0.5),
    ("zscore 1/.25/.25 rw.3", 0, (1.0, 0.25, 0.25), 0.3),
    ("zscore 1/.25/.5 rw.3", 0, (1.0, 0.25, 0.5), 0.3),
    ("zscore 1/1/1 rw.3", 0, (1.0, 1.0, 1.0), 0.3),
]


def _cache_path_data(cache: BranchCache) -> dict[str, Any]:
    return {
        q: {"text": c.text, "branches": c.branches, "scores": c.scores, "texts": dict(c.texts), "logits": dict(c.logits)}
        for q, c in cache.queries.items()
    }  # fmt: skip


def load_cache(retriever: Any, queries: Mapping[str, str], path: Path | None) -> BranchCache:
    """The branch rankings (and logits computed so far) from ``path``, else fetched."""
    if path is not None and path.exists():
        raw = json.loads(path.read_text())
        if set(raw) == set(queries) and all("scores" in v for v in raw.values()):
            cache = BranchCache.__new__(BranchCache)
            cache.retriever, cache.depth, cache.rerank_pairs, cache.rerank_seconds = retriever, DEPTH, 0, 0.0
            from m3retriever.evaluation.tune_sweep import _QueryCache

            cache.queries = {
                q: _QueryCache(v["text"], {b: [(p, d) for p, d in lst] for b, lst in v["branches"].items()},
                               dict(v["texts"]), dict(v["logits"]), dict(v["scores"]))
                for q, v in raw.items()
            }  # fmt: skip
            cache.present = [b for b in BRANCHES if b in next(iter(cache.queries.values())).branches]
            cache.lower_is_better = ()  # the small profile's dense model: cosine
            return cache
    return BranchCache(retriever, queries, DEPTH, progress=True)


def agreement_weights(cache: BranchCache, top: int = 10) -> tuple[float, ...]:
    """Label-free collection-level weights: the mean share of a branch's top ``top`` documents
    that some other branch also ranks in its top ``top``, scaled so the highest is 1."""
    share = {b: [] for b in cache.present}
    for c in cache.queries.values():
        tops = {b: {d for _, d in c.branches[b][:top]} for b in cache.present}
        for b in cache.present:
            others = set().union(*(tops[o] for o in cache.present if o != b))
            share[b].append(len(tops[b] & others) / max(1, len(tops[b])))
    mean = {b: float(np.mean(v)) for b, v in share.items()}
    hi = max(mean.values()) or 1.0
    return tuple(round(mean.get(b, 0.0) / hi, 3) for b in BRANCHES)


def branch_runs(cache: BranchCache) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for b in cache.present:
        out[b] = {}
        for q, c in cache.queries.items():
            doc = {p: d for p, d in c.branches[b]}
            out[b][q] = ranking_to_scores(hits_to_ranking_ids([p for p, _ in c.branches[b]], doc))
    return out


def candidate_runs(
    cache: BranchCache,
    k: int,
    w: Sequence[float],
    rw: float,
    depth: int = 10,
    adaptive: bool = False,
    fusion: str = "rrf",
) -> tuple[dict, dict]:
    fused, rerank = {}, {}
    for q in cache.queries:
        f = cache.fuse(q, k, w, DEPTH, adaptive, fusion)
        fused[q] = ranking_to_scores(_final_ranking(cache, q, f, 0, None, DEPTH))
        rerank[q] = ranking_to_scores(_final_ranking(cache, q, f, depth, rw, DEPTH))
    return fused, rerank


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--split", default="test")
    ap.add_argument("--location", required=True)
    ap.add_argument("--collection", required=True)
    ap.add_argument("--cache", help="JSON file for the branch rankings and logits")
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--out", help="markdown file for the table")
    ap.add_argument("--json-out", help="JSON file with every candidate's figures")
    ap.add_argument(
        "--only", help="comma-separated parts of the candidates' names to run (e.g. 'k10 1/.5/.5 rw.3,zscore')"
    )
    args = ap.parse_args(argv)
    data = load_dataset(args.dataset, split=args.split, max_queries=args.max_queries)
    queries = {q: t for q, t in data.queries.items() if q in data.qrels}
    qrels = {q: dict(data.qrels[q]) for q in queries}
    t0 = time.perf_counter()
    cfg = Config(profile="small", location=args.location, collection=args.collection)
    with Retriever(cfg) as r:
        cache = load_cache(r, queries, Path(args.cache) if args.cache else None)
        branches = {b: per_query(qrels, drop_self_matches(run)) for b, run in branch_runs(cache).items()}
        agree = agreement_weights(cache)
        rows, figures = [], {}
        runs = [(name, k, w, rw, False, "rrf") for name, k, w, rw in CANDIDATES]
        runs += [(name + " adaptive", k, w, rw, True, "rrf") for name, k, w, rw in CANDIDATES if name in ADAPTIVE]
        runs += [(name, k, w, rw, False, "zscore") for name, k, w, rw in ZSCORE]
        if args.only:
            runs = [r for r in runs if any(part in r[0] for part in args.only.split(","))]
        for name, k, w, rw, adaptive, fusion in runs:
            weights = agree if w == "agree" else w
            fused, rerank = candidate_runs(cache, k, weights, rw, adaptive=adaptive, fusion=fusion)
            pq = {**branches, "fused": per_query(qrels, drop_self_matches(fused)),
                  "rerank": per_query(qrels, drop_self_matches(rerank))}  # fmt: skip
            vs = {v.stage: v for v in versus_best_branch(pq)}
            p_rf = paired_randomisation(
                [pq["rerank"][q] for q in sorted(qrels)], [pq["fused"][q] for q in sorted(qrels)]
            )
            figures[name] = {"weights": weights, "rrf_k": k, "rerank_weight": rw,
                             **{s: v.as_dict() for s, v in vs.items()}, "p_rerank_vs_fused": p_rf}  # fmt: skip
            f, rr = vs["fused"], vs["rerank"]
            rows.append(
                f"| {name} | {f.score:.4f} | {f.delta:+.4f} (p={f.p_randomisation:.3f}) | "
                f"{rr.score:.4f} | {rr.delta:+.4f} (p={rr.p_randomisation:.3f}) | {p_rf:.3f} |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
        if args.cache:
            Path(args.cache).write_text(json.dumps(_cache_path_data(cache)))
    means = {b: float(np.mean(list(v.values()))) for b, v in branches.items()}
    head = (
        f"{data.name} `{args.split}`, {len(qrels)} queries; branches nDCG@10: "
        + ", ".join(f"{b} {m:.4f}" for b, m in means.items())
        + f"; agreement weights (dense, sparse, bm25) = {agree}; {time.perf_counter() - t0:.0f}s\n\n"
        "| candidate | fused | fused - best branch | rerank | rerank - best branch | p rerank vs fused |\n"
        "|---|---|---|---|---|---|"
    )
    text = head + "\n" + "\n".join(rows) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"branches": means, "agree": agree, "candidates": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
