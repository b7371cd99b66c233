"""Adaptive fusion against the fixed weights, on real branch rankings and under a synthetic
fault: one branch made useless for a share of the queries.

Reads the branch rankings a ``bench_defaults.py --cache FILE`` run stored (each branch's top 100
per query), recomputes the engine's weighted RRF locally with the configured weights (dense 1 /
sparse 0.5 / BM25 0.5, k = 10) and with the weights :mod:`m3retriever.search.adaptive` gives each
query, and tests each fused list against the best single branch (paired randomisation).

The fault: for a share of the queries (seeded), the sparse branch returns another query's
ranking, i.e. a branch that is useless for those queries, the situation adaptive fusion is
meant to catch (a branch weak for this query or this collection).

    python tests/benchmarks/bench_adaptive.py ../shared/data/xquad-r/en --cache /tmp/m3r/cand-xquad-en.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from m3retriever.evaluation.protocol import drop_self_matches
from m3retriever.evaluation.runner import ranking_to_scores
from m3retriever.evaluation.stats import paired_randomisation
from m3retriever.evaluation.tune_sweep import hits_to_ranking_ids
from m3retriever.labelled.data import load_dataset
from m3retriever.labelled.metrics import per_query
from m3retriever.search.adaptive import adapted_weights

BRANCHES = ("dense", "sparse", "bm25")
WEIGHTS = {"dense": 1.0, "sparse": 0.5, "bm25": 0.5}
K = 10


def fuse(lists: dict[str, list[tuple[int, str]]], weights: dict[str, float]) -> list[int]:
    """The engine's weighted RRF: 1 / ((rank0 + 1) / w + k - 1)."""
    scores: dict[int, float] = {}
    for b, w in weights.items():
        for pos, (pid, _) in enumerate(lists[b]):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / ((pos + 1) / w + K - 1)
    return [p for p, _ in sorted(scores.items(), key=lambda x: (-x[1], x[0]))]


def runs(cache: dict[str, Any], adaptive: bool) -> dict[str, dict[str, float]]:
    out = {}
    for q, c in cache.items():
        lists = {b: [(p, d) for p, d in c["branches"][b]] for b in BRANCHES if c["branches"].get(b)}
        weights = {b: WEIGHTS[b] for b in lists}
        if adaptive:
            weights = adapted_weights(weights, {b: [p for p, _ in lst] for b, lst in lists.items()})
        doc = {p: d for lst in lists.values() for p, d in lst}
        out[q] = ranking_to_scores(hits_to_ranking_ids(fuse(lists, weights), doc))
    return out


def branch_run(cache: dict[str, Any], b: str) -> dict[str, dict[str, float]]:
    return {q: ranking_to_scores(hits_to_ranking_ids([p for p, _ in c["branches"][b]], {p: d for p, d in c["branches"][b]}))
            for q, c in cache.items()}  # fmt: skip


def faulty(cache: dict[str, Any], share: float, seed: int = 0) -> dict[str, Any]:
    """``cache`` with the sparse branch of ``share`` of the queries replaced by another
    query's sparse ranking."""
    rng, qids = random.Random(seed), sorted(cache)
    out = {q: {"branches": dict(c["branches"])} for q, c in cache.items()}
    for q in qids:
        if rng.random() < share:
            out[q]["branches"]["sparse"] = cache[rng.choice(qids)]["branches"]["sparse"]
    return out


def table(name: str, cache: dict[str, Any], qrels: dict[str, dict[str, int]]) -> list[str]:
    pq = {b: per_query(qrels, drop_self_matches(branch_run(cache, b))) for b in BRANCHES}
    means = {b: float(np.mean(list(v.values()))) for b, v in pq.items()}
    best = max(means, key=lambda b: means[b])
    qs = sorted(qrels)
    rows = []
    for label, adaptive in (("fixed", False), ("adaptive", True)):
        fused = per_query(qrels, drop_self_matches(runs(cache, adaptive)))
        a, b = [fused[q] for q in qs], [pq[best][q] for q in qs]
        p = paired_randomisation(a, b)
        rows.append(f"| {name} | {best} {means[best]:.4f} | {label} | {np.mean(a):.4f} | {np.mean(a) - np.mean(b):+.4f} (p={p:.3f}) |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--split", default="test")
    ap.add_argument("--cache", required=True, help="a bench_defaults.py --cache file")
    args = ap.parse_args(argv)
    data = load_dataset(args.dataset, split=args.split)
    raw = json.loads(Path(args.cache).read_text())
    cache = {q: {"branches": v["branches"]} for q, v in raw.items()}
    qrels = {q: dict(data.qrels[q]) for q in cache if q in data.qrels}
    lines = ["| rankings | best branch | weights | fused nDCG@10 | fused - best branch |", "|---|---|---|---|---|"]
    lines += table(f"{data.name}", cache, qrels)
    for share in (0.5, 1.0):
        lines += table(f"{data.name}, sparse useless for {share:.0%} of queries", faulty(cache, share), qrels)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
