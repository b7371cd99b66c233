"""Tune search settings on labelled queries: RRF k, branch weights, prefetch limit, rerank
depth and rerank weight (interpolation of the rerank score with the fused score).

Sweeping through the engine for every combination would cost one search (and one rerank) per
query per combination. Instead each branch's ranking is fetched once per query at the largest
prefetch limit, weighted RRF is recomputed locally with the engine's formula
(``sum_b 1 / ((position_b + 1) / w_b + k - 1)`` with 0-based positions, which is
``1 / (k + position)`` for weight 1, as Qdrant computes it; a test checks equal and unequal
weights against the engine), rerank logits are computed once per (query, chunk) and cached, and
the final score is recomputed as the pipeline does (``w * minmax(logit) + (1 - w) *
minmax(fused)`` over the reranked candidates). The best setting is then checked through the real
pipeline (``verify``), and latency is measured through the real pipeline for each (prefetch
limit, rerank depth) pair.

Use a TRAIN split for tuning and report the test split once, with the tuned values.
"""

from __future__ import annotations

import itertools
import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from m3retriever.errors import InputError
from m3retriever.evaluation.metrics import DEFAULT_METRICS, score
from m3retriever.evaluation.runner import hits_to_ranking, ranking_to_scores
from m3retriever.search import minmax

__all__ = ["TuneResult", "tune", "BranchCache", "default_weight_grid"]

logger = logging.getLogger(__name__)

BRANCHES = ("dense", "sparse", "bm25")


def default_weight_grid(present: Sequence[str]) -> list[tuple[float, ...]]:
    """Weight triples (dense, sparse, bm25) over the present branches (absent ones stay 0)."""
    levels = (0.0, 0.5, 1.0, 1.5, 2.0)
    grid = set()
    for combo in itertools.product(levels, repeat=len(present)):
        if sum(1 for c in combo if c > 0) < 2:
            continue
        top = max(combo)
        normalised = tuple(round(c / top, 3) for c in combo)  # RRF order is scale-invariant
        grid.add(normalised)
    out = []
    for combo in sorted(grid):
        it = iter(combo)
        out.append(tuple(next(it) if b in present else 0.0 for b in BRANCHES))
    return out


DEFAULT_RERANK_WEIGHTS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
"""0.0, 0.1, ..., 1.0."""

@dataclass
class _QueryCache:
    text: str
    branches: dict[str, list[tuple[int, str]]]  # branch -> [(point id, doc id)] best first
    texts: dict[int, str]
    logits: dict[int, float] = field(default_factory=dict)


class BranchCache:
    """Each query's per-branch chunk rankings, and rerank logits computed on demand."""

    def __init__(self, retriever: Any, queries: Mapping[str, str], depth: int, batch_size: int = 32) -> None:
        self.retriever = retriever
        self.depth = depth
        enc = retriever.encoders
        self.present = [b for b, e in zip(BRANCHES, (enc.dense, enc.sparse, enc.bm25)) if e is not None]
        self.queries: dict[str, _QueryCache] = {
            q: _QueryCache(t, {}, {}) for q, t in queries.items()
        }
        qids = list(queries)
        for b in self.present:
            opts = {f"{x}_weight": (1.0 if x == b else 0.0) for x in BRANCHES}
            for start in range(0, len(qids), batch_size):
                batch = qids[start : start + batch_size]
                results = retriever.search_batch(
                    [queries[q] for q in batch],
                    top_k=depth,
                    prefetch_limit=depth,
                    rerank=False,
                    stage_scores=False,
                    **opts,
                )
                for q, res in zip(batch, results):
                    c = self.queries[q]
                    c.branches[b] = [(h.id, h.doc_id) for h in res.hits]
                    for h in res.hits:
                        c.texts[h.id] = h.text
        self.rerank_pairs = 0
        self.rerank_seconds = 0.0

    def fuse(self, q: str, k: int, weights: Sequence[float], prefetch: int) -> list[tuple[int, float]]:
        """Weighted RRF of the branch rankings cut at ``prefetch``: [(point id, score)] best first."""
        c = self.queries[q]
        scores: dict[int, float] = {}
        for b, w in zip(BRANCHES, weights):
            if w <= 0 or b not in c.branches:
                continue
            for pos, (pid, _) in enumerate(c.branches[b][:prefetch]):
                # Qdrant's weighted RRF: 1 / ((rank0 + 1) / w + k - 1), i.e. 1 / (k + rank0)
                # when w == 1 (ranks counted from 0)
                scores[pid] = scores.get(pid, 0.0) + 1.0 / ((pos + 1) / w + k - 1)
        return sorted(scores.items(), key=lambda x: (-x[1], x[0]))

    def logits(self, q: str, pids: Sequence[int]) -> np.ndarray:
        c = self.queries[q]
        missing = [p for p in pids if p not in c.logits]
        if missing and self.retriever.reranker is not None:
            t0 = time.perf_counter()
            values = self.retriever.reranker.score(c.text, [c.texts[p] for p in missing])
            self.rerank_seconds += time.perf_counter() - t0
            self.rerank_pairs += len(missing)
            c.logits.update({p: float(v) for p, v in zip(missing, values)})
        return np.array([c.logits[p] for p in pids], dtype=np.float64)

    def doc_of(self, q: str) -> dict[int, str]:
        c = self.queries[q]
        return {pid: d for lst in c.branches.values() for pid, d in lst}


def _final_ranking(
    cache: BranchCache, q: str, fused: list[tuple[int, float]], depth: int, weight: float | None, top: int
) -> list[str]:
    """Document ranking of the pipeline: rerank the top ``depth`` (``weight`` None: no rerank)."""
    doc = cache.doc_of(q)
    if weight is None or depth <= 0:
        return hits_to_ranking_ids([p for p, _ in fused[:top]], doc)
    head = fused[:depth]
    pids = [p for p, _ in head]
    fs = np.array([s for _, s in head], dtype=np.float64)
    lg = cache.logits(q, pids)
    final = lg if weight >= 1.0 else weight * minmax(lg) + (1.0 - weight) * minmax(fs)
    order = sorted(range(len(head)), key=lambda i: (-final[i], -fs[i], pids[i]))
    ranked = [pids[i] for i in order] + [p for p, _ in fused[depth:top]]
    return hits_to_ranking_ids(ranked, doc)


def hits_to_ranking_ids(pids: Sequence[int], doc: Mapping[int, str]) -> list[str]:
    seen: dict[str, None] = {}
    for p in pids:
        seen.setdefault(doc[p], None)
    return list(seen)


@dataclass
class TuneResult:
    """Every setting tried with its quality, the best one, and measured latencies."""

    metric: str
    n_queries: int
    rows: list[dict[str, Any]]
    best: dict[str, Any]
    default: dict[str, Any] | None
    latency_ms: list[dict[str, Any]]
    verified: dict[str, Any] | None = None
    seconds: float = 0.0

    def top(self, n: int = 15) -> list[dict[str, Any]]:
        return sorted(self.rows, key=lambda r: -r[self.metric])[:n]

    def table(self, n: int = 15) -> str:
        lines = [
            f"{self.n_queries} queries; {len(self.rows)} settings; best {self.metric} = "
            f"{self.best[self.metric]:.4f}"
            + (f" (default {self.default[self.metric]:.4f})" if self.default else ""),
            "",
            self.markdown_rows(self.top(n)),
        ]
        if self.latency_ms:
            lines += ["", "latency through the pipeline (single queries):", self.latency_markdown()]
        if self.verified:
            lines += ["", f"best setting re-run through the pipeline: {json.dumps(self.verified)}"]
        return "\n".join(lines)

    def markdown_rows(self, rows: Sequence[Mapping[str, Any]]) -> str:
        keys = ["rrf_k", "dense_weight", "sparse_weight", "bm25_weight", "prefetch_limit", "rerank", "rerank_depth", "rerank_weight"]
        mets = [m for m in rows[0] if "@" in m] if rows else []
        out = ["| " + " | ".join(keys + mets) + " |", "|" + "|".join("---" for _ in keys + mets) + "|"]
        for r in rows:
            out.append("| " + " | ".join(str(r.get(k, "-")) for k in keys) + " | " + " | ".join(f"{r[m]:.4f}" for m in mets) + " |")
        return "\n".join(out)

    def latency_markdown(self) -> str:
        out = ["| prefetch_limit | rerank_depth | p50 ms | p95 ms |", "|---|---|---|---|"]
        for r in self.latency_ms:
            out.append(f"| {r['prefetch_limit']} | {r['rerank_depth']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} |")
        return "\n".join(out)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "n_queries": self.n_queries,
            "best": self.best,
            "default": self.default,
            "verified": self.verified,
            "latency_ms": self.latency_ms,
            "rows": self.rows,
            "seconds": self.seconds,
        }

    def write(self, out_dir: str | Path) -> list[Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        j = out / "tune.json"
        j.write_text(json.dumps(self.as_dict(), indent=2))
        md = out / "tune.md"
        md.write_text(self.table(30) + "\n")
        return [j, md]


def _matching(
    rows: Sequence[dict[str, Any]], resolved: Any, present: Sequence[str], *, rerank: bool
) -> dict[str, Any] | None:
    """The row with the retriever's configured settings (``None`` if it was not swept)."""
    weights = tuple(getattr(resolved, f"{b}_weight") if b in present else 0.0 for b in BRANCHES)
    for r in rows:
        if (
            r["rrf_k"] == resolved.rrf_k
            and (r["dense_weight"], r["sparse_weight"], r["bm25_weight"]) == weights
            and r["prefetch_limit"] == resolved.prefetch_limit
            and r["rerank"] == rerank
            and (
                not rerank
                or (r["rerank_depth"] == resolved.rerank_depth and r["rerank_weight"] == resolved.rerank_weight)
            )
        ):
            return r
    return None


def _latency(retriever: Any, texts: Sequence[str], **opts: Any) -> tuple[float, float]:
    times = []
    for t in texts:
        t0 = time.perf_counter()
        retriever.search(t, stage_scores=False, **opts)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]


def tune(
    retriever: Any,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    metric: str = "ndcg@10",
    metrics: Sequence[str] = DEFAULT_METRICS,
    rrf_ks: Sequence[int] = (5, 10, 30, 60, 100),
    weights: Sequence[Sequence[float]] | None = None,
    prefetch_limits: Sequence[int] = (50, 100),
    rerank_depths: Sequence[int] = (10, 20, 50),
    rerank_weights: Sequence[float] = DEFAULT_RERANK_WEIGHTS,
    include_no_rerank: bool = True,
    rerank_top_settings: int | None = 5,
    latency_queries: int = 20,
    verify: bool = True,
) -> TuneResult:
    """Sweep search settings on labelled queries and report quality (and latency).

    Args:
        retriever: An open retriever holding the corpus.
        queries: ``{query_id: text}`` (a TRAIN split: never tune on the test split).
        qrels: Judgements.
        metric: Metric to maximise.
        metrics: Metrics reported.
        rrf_ks: RRF k values.
        weights: (dense, sparse, bm25) weight triples (default: a grid over present branches).
        prefetch_limits: Candidates per branch.
        rerank_depths: Fused candidates reranked.
        rerank_weights: Rerank-score weights (1.0 = rerank alone, 0.0 = fused order).
        include_no_rerank: Report the settings without reranking too (they are always
            computed: they rank the fusion settings).
        rerank_top_settings: Try the rerank depths and weights only on this many fusion
            settings, the best by ``metric`` without reranking (``None``: on every one). Each
            new candidate costs a cross-encoder call, so a full cross product is slow on CPU.
        latency_queries: Queries timed through the pipeline per (prefetch, depth) pair (0: skip).
        verify: Re-run the best setting through the real pipeline.

    Returns:
        A :class:`TuneResult`.
    """
    t_start = time.perf_counter()
    metrics = list(dict.fromkeys([metric, *metrics]))
    queries = {q: t for q, t in queries.items() if q in qrels}
    if not queries:
        raise InputError("no query has relevance judgements")
    judged = {q: dict(qrels[q]) for q in queries}
    depth = max(prefetch_limits)
    cache = BranchCache(retriever, queries, depth)
    present = cache.present
    if weights is None:
        weights = default_weight_grid(present) if len(present) > 1 else [tuple(1.0 if b in present else 0.0 for b in BRANCHES)]
    weights = [tuple(float(x) for x in w) + (0.0,) * (3 - len(w)) for w in weights]
    has_rr = retriever.reranker is not None
    rerank_opts: list[tuple[int, float]] = (
        [(d, w) for d in rerank_depths for w in rerank_weights] if has_rr else []
    )
    top = 100
    qids = list(queries)
    resolved = retriever.search_settings()

    def evaluate_setting(
        k: int, w: Sequence[float], pf: int, ro: tuple[int, float] | None, fused: Mapping[str, Any]
    ) -> dict[str, Any]:
        run = {
            q: ranking_to_scores(
                _final_ranking(cache, q, fused[q], ro[0] if ro else 0, ro[1] if ro else None, top)
            )
            for q in qids
        }
        return {
            "rrf_k": k,
            "dense_weight": w[0],
            "sparse_weight": w[1],
            "bm25_weight": w[2],
            "prefetch_limit": pf,
            "rerank": ro is not None,
            "rerank_depth": ro[0] if ro else None,
            "rerank_weight": ro[1] if ro else None,
            **score(judged, run, metrics),
        }

    # Stage 1: every fusion setting without reranking (cheap: local RRF over cached rankings).
    def fuse_all(k: int, w: Sequence[float], pf: int) -> dict[str, Any]:
        return {q: cache.fuse(q, k, w, pf) for q in qids}

    fusion_rows = [
        evaluate_setting(k, w, pf, None, fuse_all(k, w, pf))
        for k, w, pf in itertools.product(rrf_ks, weights, prefetch_limits)
    ]
    rows: list[dict[str, Any]] = list(fusion_rows) if (include_no_rerank or not has_rr) else []
    # Stage 2: rerank depths and weights on the best fusion settings only.
    if rerank_opts:
        ranked = sorted(fusion_rows, key=lambda r: -r[metric])
        chosen = ranked if rerank_top_settings is None else ranked[: max(1, rerank_top_settings)]
        current = _matching(fusion_rows, resolved, present, rerank=False)
        if current is not None and current not in chosen:
            chosen.append(current)  # the configured setting is always measured with rerank too
        logger.info("tune: reranking %d of %d fusion settings", len(chosen), len(fusion_rows))
        for fr in chosen:
            w = (fr["dense_weight"], fr["sparse_weight"], fr["bm25_weight"])
            fused = fuse_all(fr["rrf_k"], w, fr["prefetch_limit"])  # once per fusion setting
            for ro in rerank_opts:
                rows.append(evaluate_setting(fr["rrf_k"], w, fr["prefetch_limit"], ro, fused))
    best = max(rows, key=lambda r: (r[metric], -(r["rerank_depth"] or 0)))
    default = _matching(rows, resolved, present, rerank=resolved.rerank)
    latency = []
    if latency_queries > 0:
        texts = [queries[q] for q in qids[:latency_queries]]
        retriever.search(texts[0])  # warm up
        for pf in prefetch_limits:
            for d in ([None] if not has_rr else list(rerank_depths)):
                opts: dict[str, Any] = {"prefetch_limit": pf}
                if d is not None:
                    opts["rerank_depth"] = d
                p50, p95 = _latency(retriever, texts, **opts)
                latency.append({"prefetch_limit": pf, "rerank_depth": d, "p50_ms": p50, "p95_ms": p95})
    verified = None
    if verify:
        opts = {
            "rrf_k": best["rrf_k"],
            "dense_weight": best["dense_weight"],
            "sparse_weight": best["sparse_weight"],
            "bm25_weight": best["bm25_weight"],
            "prefetch_limit": best["prefetch_limit"],
            "rerank": best["rerank"],
        }
        if best["rerank"]:
            opts.update(rerank_depth=best["rerank_depth"], rerank_weight=best["rerank_weight"])
        run = {}
        for start in range(0, len(qids), 32):
            batch = qids[start : start + 32]
            for q, r in zip(batch, retriever.search_batch([queries[x] for x in batch], top_k=top if not best["rerank"] else max(10, best["rerank_depth"]), stage_scores=False, **opts)):
                run[q] = ranking_to_scores(hits_to_ranking(r.hits))
        verified = {"settings": opts, metric: score(judged, run, [metric])[metric]}
    return TuneResult(
        metric=metric,
        n_queries=len(queries),
        rows=rows,
        best=best,
        default=default,
        latency_ms=latency,
        verified=verified,
        seconds=time.perf_counter() - t_start,
    )
