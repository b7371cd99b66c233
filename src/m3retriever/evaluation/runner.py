"""Per-stage evaluation from one ingest: dense, sparse, BM25, fused, fused+MaxSim and rerank.

Each stage's ranking comes from the retriever itself:

- ``dense`` / ``sparse`` / ``bm25``: a search with only that branch (the other branch weights
  set to 0, so the branch is dropped from the query), no rerank, ``top_k = depth``;
- ``fused``: the configured branches and weights fused in the engine, no rerank (and no
  multivector rescoring);
- ``multivector`` (collections that store the late-interaction vectors): the fused candidates
  rescored by MaxSim, no rerank;
- ``rerank``: the configured pipeline (fused, then the top ``rerank_depth`` reranked and
  interpolated with the fused score as configured); below the rerank depth the fused order
  follows, so Recall@100 stays comparable.

Chunk hits are aggregated to documents by best rank (the first chunk of a document seen in a
ranking gives the document its rank), because judgements name documents. A document whose id
equals the query id is dropped before scoring, as BEIR does (:mod:`.protocol`).
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from m3retriever.errors import InputError
from m3retriever.evaluation.protocol import apply_protocol, progress_bar
from m3retriever.evaluation.report import EvalReport, Run
from m3retriever.evaluation.stats import versus_best_branch
from m3retriever.labelled.calibration import reliability
from m3retriever.labelled.metrics import DEFAULT_METRICS, compare, per_query
from m3retriever.types import Hit

__all__ = [
    "STAGES",
    "EvalReport",
    "evaluate",
    "stage_runs",
    "hits_to_run",
    "ingest_corpus",
    "available_stages",
]

logger = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("dense", "sparse", "bm25", "dense2", "fused", "multivector", "rerank")



def ingest_corpus(retriever: Any, data: Any, *, show_progress: bool | None = None) -> Any:
    """Ingest a BEIR dataset's corpus (unchanged documents are skipped) and optimise."""
    if data.corpus_path is None:
        raise InputError(f"{data.name}: no corpus to ingest")
    report = retriever.ingest_path(data.corpus_path, show_progress=show_progress)
    retriever.optimize()
    return report


def available_stages(retriever: Any) -> list[str]:
    """The stages this retriever has (a stage whose branch or reranker is absent is left out)."""
    enc = retriever.encoders
    pairs = (("dense", enc.dense), ("sparse", enc.sparse), ("bm25", enc.bm25), ("dense2", enc.dense2))
    branches = [n for n, e in pairs if e is not None]
    out = list(branches)
    if len(branches) > 1:
        out.append("fused")
    if retriever.settings.multivector:
        out.append("multivector")
    if retriever.reranker is not None:
        out.append("rerank")
    return out


def hits_to_ranking(hits: Iterable[Hit]) -> list[str]:
    """Document ids in rank order; a document takes the rank of its best chunk."""
    seen: dict[str, None] = {}
    for h in hits:
        if h.doc_id not in seen:
            seen[h.doc_id] = None
    return list(seen)


def ranking_to_scores(ranking: Sequence[str]) -> dict[str, float]:
    """Rank-derived scores (``n - rank + 1``) so that any metric sees exactly this order."""
    n = len(ranking)
    return {d: float(n - i) for i, d in enumerate(ranking)}


def hits_to_run(results: Mapping[str, Iterable[Hit]]) -> Run:
    """``{query_id: hits}`` to a ranx-style run ``{query_id: {doc_id: score}}``."""
    return {q: ranking_to_scores(hits_to_ranking(h)) for q, h in results.items()}


def _stage_options(stage: str, depth: int, rerank_depth: int | None) -> dict[str, Any]:
    common: dict[str, Any] = {"stage_scores": False}
    if stage in ("dense", "sparse", "bm25", "dense2"):
        weights = {f"{b}_weight": (1.0 if b == stage else 0.0) for b in ("dense", "sparse", "bm25", "dense2")}
        return {**common, **weights, "rerank": False, "top_k": depth, "prefetch_limit": max(depth, 1), "multivector_rescore": False}
    if stage in ("fused", "multivector"):
        return {**common, "rerank": False, "top_k": depth, "multivector_rescore": stage == "multivector"}
    if stage == "rerank":
        # top_k = rerank depth: exactly the pipeline's reranked head (the fused tail follows)
        return {**common, "rerank": True, "rerank_depth": rerank_depth, "top_k": rerank_depth}
    raise InputError(f"unknown stage {stage!r}; choose from {list(STAGES)}")


@dataclass
class StageTiming:
    """Per-query latency of one stage, in milliseconds (medians over queries)."""

    encode_ms: float = 0.0
    search_ms: float = 0.0
    rerank_ms: float = 0.0
    total_ms: float = 0.0
    weights: dict[str, list[float]] = field(default_factory=dict, repr=False)
    """Each branch's RRF weight in each query's fusion (several branches only)."""
    confidences: dict[str, list[tuple[str, float]]] = field(default_factory=dict, repr=False)
    """Each query's hits as (doc id, confidence), where a reranker gave them one."""

    def weight_summary(self) -> dict[str, dict[str, float]]:
        """Per branch: the mean, smallest and largest weight over the queries."""
        return {
            b: {"mean": statistics.fmean(v), "min": min(v), "max": max(v)} for b, v in self.weights.items() if v
        }


def _fused_base(runs: Mapping[str, Run], first: str, queries: Iterable[str]) -> Run:
    """Each query's fused ranking (else the ``first`` stage's): the rerank stage's tail."""
    return {q: runs.get("fused", {}).get(q) or runs.get(first, {}).get(q, {}) for q in queries}


def _run_stage(
    retriever: Any, queries: Mapping[str, str], opts: Mapping[str, Any], batch_size: int, tail: Run | None, depth: int,
    bar: Any = None,
) -> tuple[Run, StageTiming]:  # fmt: skip
    """One stage's run and timing (with ``tail``: each ranking continued in its tail's order, to ``depth``)."""
    qids = list(queries)
    per: Run = {}
    t: dict[str, list[float]] = {"encode": [], "search": [], "rerank": [], "total": []}
    weights: dict[str, list[float]] = {}
    confidences: dict[str, list[tuple[str, float]]] = {}
    for start in range(0, len(qids), batch_size):
        batch = qids[start : start + batch_size]
        results = retriever.search_batch([queries[q] for q in batch], **opts)
        for q, res in zip(batch, results):
            ranking = hits_to_ranking(res.hits)
            if tail is not None:
                base = tail[q]
                top = set(ranking)
                ranking = (ranking + [d for d in sorted(base, key=lambda d: -base[d]) if d not in top])[:depth]
            per[q] = ranking_to_scores(ranking)
            for key in t:
                if key in res.timings_ms:
                    t[key].append(float(res.timings_ms[key]))
            confidences[q] = [(h.doc_id, h.confidence) for h in res.hits if h.confidence is not None]
            if len(res.branch_weights) > 1:
                for b, w in res.branch_weights.items():
                    weights.setdefault(b, []).append(float(w))
        if bar is not None:
            bar.update(len(batch))
    medians = {f"{k}_ms": statistics.median(v) if v else 0.0 for k, v in t.items()}
    return per, StageTiming(**medians, weights=weights, confidences={q: c for q, c in confidences.items() if c})


def stage_runs(
    retriever: Any,
    queries: Mapping[str, str],
    stages: Sequence[str] | None = None,
    *,
    depth: int = 100,
    rerank_depth: int | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> tuple[dict[str, Run], dict[str, StageTiming]]:
    """The document ranking of each stage for each query.

    Args:
        retriever: An open :class:`~m3retriever.Retriever` holding the corpus.
        queries: ``{query_id: text}``.
        stages: Stages to run (default: every stage the retriever has).
        depth: Documents ranked per stage (100 gives Recall@100).
        rerank_depth: Override the rerank depth (default: the retriever's setting).
        batch_size: Queries encoded and searched together.
        progress: Show a progress bar per stage on stderr (queries done, ETA) and log each
            stage's time at INFO level.

    Returns:
        ``({stage: run}, {stage: timing})``.
    """
    have = available_stages(retriever)
    stages = list(stages) if stages else have
    for s in stages:
        if s not in STAGES:
            raise InputError(f"unknown stage {s!r}; choose from {list(STAGES)}")
        if s not in have:
            raise InputError(f"stage {s!r} is not available with this retriever (it has {have})")
    runs: dict[str, Run] = {}
    timings: dict[str, StageTiming] = {}
    need_fused_tail = "rerank" in stages
    fused_needed = [s for s in stages if s != "rerank"] + (
        ["fused"] if need_fused_tail and "fused" not in stages and "fused" in have else []
    )
    resolved_depth = rerank_depth or retriever.search_settings().rerank_depth
    for stage in fused_needed + (["rerank"] if "rerank" in stages else []):
        opts = _stage_options(stage, depth, resolved_depth)
        # Below the rerank depth the pipeline's candidates keep their fused order.
        tail = _fused_base(runs, have[0], queries) if stage == "rerank" else None
        t0 = time.perf_counter()
        with progress_bar(len(queries), f"eval {stage}", progress) as bar:
            runs[stage], timings[stage] = _run_stage(retriever, queries, opts, batch_size, tail, depth, bar)
        if progress:
            logger.info("stage %s: %d queries in %.1fs", stage, len(queries), time.perf_counter() - t0)
    return {s: runs[s] for s in stages}, {s: timings[s] for s in stages}


def _report_settings(retriever: Any, depth: int, rerank_depth: int | None) -> dict[str, Any]:
    """The search settings an evaluation ran with, for its report."""
    resolved = retriever.search_settings(rerank_depth=rerank_depth)
    return {
        "profile": retriever.settings.profile,
        "depth": depth,
        "prefetch_limit": resolved.prefetch_limit,
        "rrf_k": resolved.rrf_k,
        "fusion": resolved.fusion,
        "weights": {b: getattr(resolved, f"{b}_weight") for b in ("dense", "sparse", "bm25")},
        "rerank_depth": resolved.rerank_depth,
        "rerank_weight": resolved.rerank_weight,
        "adaptive": resolved.adaptive,
    }


def _medians(t: StageTiming) -> dict[str, float]:
    """``{"encode", "search", "rerank", "total"}``: the keys the report reads (its ms/query
    column is ``total``) and search results use."""
    return {k.removesuffix("_ms"): v for k, v in vars(t).items() if k.endswith("_ms")}


def evaluate(
    retriever: Any,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    stages: Sequence[str] | None = None,
    *,
    baseline: str | None = "fused",
    metrics: Sequence[str] = DEFAULT_METRICS,
    depth: int = 100,
    rerank_depth: int | None = None,
    test: str = "student",
    dataset: str = "dataset",
    batch_size: int = 32,
    keep_self_matches: bool = False,
    progress: bool = False,
) -> EvalReport:
    """Score each stage of ``retriever`` on labelled queries (the corpus must be ingested).

    Args:
        retriever: An open :class:`~m3retriever.Retriever`.
        queries: ``{query_id: text}``.
        qrels: ``{query_id: {doc_id: relevance}}``.
        stages: Stages to score (default: every stage present).
        baseline: Stage for the paired significance tests (default ``fused``; falls back to the
            first stage when absent).
        metrics: ranx metric names; the first one picks the best stage.
        depth: Documents ranked per stage.
        rerank_depth: Override the rerank depth.
        test: ``"student"`` (paired t-test) or ``"fisher"`` (paired randomisation test).
        dataset: Name for the report.
        batch_size: Queries per search batch.
        keep_self_matches: Score a retrieved document whose id equals the query id (BEIR and
            MTEB drop it, and so does the default).
        progress: Show a progress bar per stage on stderr.

    Returns:
        An :class:`EvalReport`.
    """
    queries = {q: t for q, t in queries.items() if q in qrels}
    if not queries:
        raise InputError("no query has relevance judgements")
    runs, timings = stage_runs(
        retriever, queries, stages, depth=depth, rerank_depth=rerank_depth, batch_size=batch_size, progress=progress
    )
    runs, protocol = apply_protocol(runs, keep_self_matches)
    names = list(runs)
    if baseline not in runs:
        baseline = names[0]
    judged = {q: dict(qrels[q]) for q in queries}
    comparison = compare(judged, runs, metrics, baseline=baseline, test=test)
    versus = versus_best_branch({s: per_query(judged, runs[s], metrics[0]) for s in names})
    scores = {s: {m: comparison[s][m]["score"] for m in metrics} for s in names}
    return EvalReport(
        dataset=dataset, n_queries=len(queries), stages=names, metrics=list(metrics), scores=scores,
        comparison={s: comparison[s] for s in names}, baseline=baseline, test=test,
        timings_ms={s: _medians(t) for s, t in timings.items()}, settings=_report_settings(retriever, depth, rerank_depth),
        branch_weights={s: t.weight_summary() for s, t in timings.items() if t.weights},
        runs=runs, protocol=protocol, versus=[v.as_dict() for v in versus],
        calibration=_calibration(timings, judged, keep_self_matches),
    )


def _calibration(
    timings: Mapping[str, StageTiming], judged: Mapping[str, Mapping[str, int]], keep_self_matches: bool
) -> dict[str, Any] | None:
    """The reliability diagram and expected calibration error of the reranked hits'
    confidences (:func:`~m3retriever.labelled.calibration.reliability`); ``None`` without them."""
    pairs = [
        (conf, judged[q].get(doc, 0) > 0)
        for t in timings.values()
        for q, hits in t.confidences.items()
        for doc, conf in hits
        if keep_self_matches or doc != q
    ]
    if not pairs:
        return None
    return reliability([c for c, _ in pairs], [y for _, y in pairs]).as_dict()
