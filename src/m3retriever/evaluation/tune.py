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

Use a TRAIN split for tuning and report the test split once, with the tuned values. As in
``eval``, a document whose id equals the query id is dropped before scoring, as BEIR does
(:mod:`m3retriever.evaluation.protocol`).
"""

from __future__ import annotations

import itertools
import json
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from m3retriever.config.saved import TUNED
from m3retriever.errors import InputError
from m3retriever.evaluation.protocol import describe, drop_self_matches
from m3retriever.evaluation.runner import hits_to_ranking, ranking_to_scores
from m3retriever.evaluation.tune_sweep import BRANCHES, RANK_DEPTH, BranchCache, Sweep
from m3retriever.labelled.calibration import fit_platt, reliability
from m3retriever.labelled.metrics import DEFAULT_METRICS, score
from m3retriever.search.stage_scores import calibrated

__all__ = ["TuneResult", "tune", "BranchCache", "default_weight_grid"]

logger = logging.getLogger(__name__)


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
    protocol: str = ""
    calibration: dict[str, Any] | None = None
    """The confidence calibration fitted on the best setting's reranked candidates: slope, bias,
    pairs, positives, and the expected calibration error (in-sample) before and after."""

    def top(self, n: int = 15) -> list[dict[str, Any]]:
        return sorted(self.rows, key=lambda r: -r[self.metric])[:n]

    def table(self, n: int = 15) -> str:
        lines = [
            f"{self.n_queries} queries; {len(self.rows)} settings; best {self.metric} = "
            f"{self.best[self.metric]:.4f}"
            + (f" (default {self.default[self.metric]:.4f})" if self.default else "")
            + (f"; {self.protocol}" if self.protocol else ""),
            "",
            self.markdown_rows(self.top(n)),
        ]
        if self.latency_ms:
            lines += ["", "latency through the pipeline (single queries):", self.latency_markdown()]
        if self.verified:
            lines += ["", f"best setting re-run through the pipeline: {json.dumps(self.verified)}"]
        if self.calibration:
            c = self.calibration
            lines += [
                "",
                f"confidence calibration: confidence_slope={c['slope']:.4f}, confidence_bias={c['bias']:.4f} "
                f"(fitted on {c['pairs']} reranked candidates, {c['positives']} relevant; expected "
                f"calibration error {c['ece_before']:.4f} with the settings in force, {c['ece_after']:.4f} fitted)",
            ]
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
            "protocol": self.protocol,
            "calibration": self.calibration,
        }

    def write(self, out_dir: str | Path) -> list[Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        j = out / "tune.json"
        j.write_text(json.dumps(self.as_dict(), indent=2))
        md = out / "tune.md"
        md.write_text(self.table(30) + "\n")
        return [j, md]


_VERIFY_BATCH = 32
"""Queries searched together when the best setting is re-run."""


def _latency(retriever: Any, texts: Sequence[str], **opts: Any) -> tuple[float, float]:
    """Median and 95th percentile of single-query search times, in milliseconds."""
    times = []
    for t in texts:
        t0 = time.perf_counter()
        retriever.search(t, stage_scores=False, **opts)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]


def _pipeline_latency(
    retriever: Any,
    queries: Mapping[str, str],
    latency_queries: int,
    prefetch_limits: Sequence[int],
    rerank_depths: Sequence[int] | None,
) -> list[dict[str, Any]]:
    """Time single queries through the pipeline for each (prefetch limit, rerank depth) pair.

    Args:
        retriever: An open retriever holding the corpus.
        queries: ``{query_id: text}``.
        latency_queries: Queries timed, the first ones (0: skip).
        prefetch_limits: Candidates per branch.
        rerank_depths: Rerank depths (``None``: the retriever has no reranker).

    Returns:
        ``[{"prefetch_limit", "rerank_depth", "p50_ms", "p95_ms"}]``.
    """
    if latency_queries <= 0:
        return []
    texts = [queries[q] for q in list(queries)[:latency_queries]]
    retriever.search(texts[0])  # warm up
    latency = []
    for pf in prefetch_limits:
        for d in ([None] if rerank_depths is None else list(rerank_depths)):
            opts: dict[str, Any] = {"prefetch_limit": pf}
            if d is not None:
                opts["rerank_depth"] = d
            p50, p95 = _latency(retriever, texts, **opts)
            latency.append({"prefetch_limit": pf, "rerank_depth": d, "p50_ms": p50, "p95_ms": p95})
    return latency


def _search_options(best: Mapping[str, Any]) -> dict[str, Any]:
    """The search options of a setting row."""
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
    return opts


def _verify(
    retriever: Any,
    queries: Mapping[str, str],
    judged: Mapping[str, Mapping[str, int]],
    best: Mapping[str, Any],
    metric: str,
    top: int,
    keep_self_matches: bool = False,
) -> dict[str, Any]:
    """Re-run a setting row through the pipeline and score it.

    Args:
        retriever: An open retriever holding the corpus.
        queries: ``{query_id: text}``.
        judged: Judgements of those queries.
        best: The setting row (as in :attr:`TuneResult.rows`).
        metric: Metric to report.
        top: Documents ranked per query when not reranking.
        keep_self_matches: Score a document whose id equals the query id (BEIR drops it).

    Returns:
        ``{"settings": search options, metric: score}``.
    """
    opts = _search_options(best)
    top_k = top if not best["rerank"] else max(10, best["rerank_depth"])
    qids = list(queries)
    run = {}
    for start in range(0, len(qids), _VERIFY_BATCH):
        batch = qids[start : start + _VERIFY_BATCH]
        results = retriever.search_batch(
            [queries[x] for x in batch], top_k=top_k, stage_scores=False, multivector_rescore=False, **opts
        )
        for q, r in zip(batch, results):
            run[q] = ranking_to_scores(hits_to_ranking(r.hits))
    run = run if keep_self_matches else drop_self_matches(run)
    return {"settings": opts, metric: score(judged, run, [metric])[metric]}


def _labelled(
    queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]]
) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The queries that have judgements, and their judgements."""
    queries = {q: t for q, t in queries.items() if q in qrels}
    if not queries:
        raise InputError("no query has relevance judgements")
    return queries, {q: dict(qrels[q]) for q in queries}


def _weight_triples(
    weights: Sequence[Sequence[float]] | None, present: Sequence[str]
) -> list[tuple[float, ...]]:
    """(dense, sparse, bm25) weight triples: ``weights`` padded with zeros, or a default grid."""
    if weights is None:
        weights = default_weight_grid(present) if len(present) > 1 else [tuple(1.0 if b in present else 0.0 for b in BRANCHES)]
    return [tuple(float(x) for x in w) + (0.0,) * (3 - len(w)) for w in weights]


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
    keep_self_matches: bool = False,
    progress: bool = False,
    save: bool = False,
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
        keep_self_matches: Score a document whose id is the query id (BEIR and the default drop it).
        progress: Show progress bars on stderr (rankings fetched, settings scored, ETA).
        save: Save the best setting with the collection
            (``retriever.save_search_defaults``): every retriever that opens the collection
            afterwards uses it unless it sets the setting itself. ``rerank`` is not saved; the
            saved defaults it does not tune (``hnsw_ef``, ``oversampling``, ``rescore``,
            ``query_instruction``) are kept.

    Returns:
        A :class:`TuneResult`.
    """
    t_start = time.perf_counter()
    queries, judged = _labelled(queries, qrels)
    cache = BranchCache(retriever, queries, max(prefetch_limits), progress=progress)
    has_rr = retriever.reranker is not None
    names = list(dict.fromkeys([metric, *metrics]))
    sweep = Sweep(cache, judged, metric, names, retriever.search_settings(), keep_self_matches, progress)
    fusion = itertools.product(rrf_ks, _weight_triples(weights, cache.present), prefetch_limits)
    rerank = [(d, w) for d in rerank_depths for w in rerank_weights] if has_rr else []
    rows = sweep.rows(fusion, rerank, keep_fusion=include_no_rerank or not has_rr, top_settings=rerank_top_settings)
    best = max(rows, key=lambda r: (r[metric], -(r["rerank_depth"] or 0)))
    latency = _pipeline_latency(retriever, queries, latency_queries, prefetch_limits, rerank_depths if has_rr else None)
    verified = _verify(retriever, queries, judged, best, metric, RANK_DEPTH, keep_self_matches) if verify else None
    default = sweep.configured(rows, rerank=sweep.resolved.rerank)
    reranked = [r for r in rows if r["rerank"]]
    # Fitted on the best reranking setting's candidates (the best row itself when it reranks).
    calibration = _calibrate(sweep, max(reranked, key=lambda r: r[metric])) if reranked else None
    if save:
        opts = {k: v for k, v in _search_options(best).items() if k != "rerank"}
        kept = {k: v for k, v in retriever.search_defaults.items() if k not in TUNED}  # hnsw_ef, oversampling...
        if calibration:
            kept.update(confidence_slope=calibration["slope"], confidence_bias=calibration["bias"])
        # The sweep fused as the search does under zscore, else by weighted RRF (dbsf too).
        fused_by = "zscore" if sweep.resolved.fusion == "zscore" else "rrf"
        retriever.save_search_defaults({**kept, "fusion": fused_by, **opts})
    return TuneResult(
        metric=metric, n_queries=len(queries), rows=rows, best=best, default=default, latency_ms=latency,
        verified=verified, seconds=time.perf_counter() - t_start, protocol=describe(keep_self_matches, len(cache.self_matched())),
        calibration=calibration,
    )


def _calibrate(sweep: Sweep, best: Mapping[str, Any]) -> dict[str, Any] | None:
    """Fit the confidence calibration on the best setting's reranked candidates
    (:func:`~m3retriever.labelled.calibration.fit_platt`); ``None`` with a warning when the
    labels cannot support a fit (no relevant candidate, or no other)."""
    logits, labels = sweep.calibration_pairs(best)
    try:
        fitted = fit_platt(logits, labels)
    except InputError as exc:
        logger.warning("tune: confidence calibration not fitted: %s", exc)
        return None
    s = sweep.resolved
    before = reliability(calibrated(np.asarray(logits), s.confidence_slope, s.confidence_bias), labels)
    after = reliability(fitted.apply(logits), labels)
    return {
        "slope": fitted.slope,
        "bias": fitted.bias,
        "pairs": fitted.pairs,
        "positives": fitted.positives,
        "ece_before": before.ece,
        "ece_after": after.ece,
    }
