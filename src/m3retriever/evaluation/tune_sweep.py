"""The local sweep behind ``tune``: each branch's ranking is fetched once per query, weighted RRF
is recomputed with the engine's formula, rerank logits are cached per (query, chunk), and each
setting's document rankings are scored (see :mod:`m3retriever.evaluation.tune`)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from m3retriever.collection import collection_spec
from m3retriever.evaluation.protocol import drop_self_matches, progress_bar
from m3retriever.evaluation.runner import ranking_to_scores
from m3retriever.labelled.metrics import score
from m3retriever.search import minmax
from m3retriever.search.adaptive import adapted_weights
from m3retriever.search.fusion import LOWER_IS_BETTER, zscore_fuse
from m3retriever.search.matching import Matcher, analyzer_of
from m3retriever.search.reading import read_and_score

__all__ = ["BRANCHES", "RANK_DEPTH", "BranchCache", "Sweep"]

logger = logging.getLogger(__name__)

BRANCHES = ("dense", "sparse", "bm25")

RANK_DEPTH = 100
"""Documents ranked per query by a setting (the fused order below the rerank depth)."""


@dataclass
class _QueryCache:
    text: str
    branches: dict[str, list[tuple[int, str]]]  # branch -> [(point id, doc id)] best first
    texts: dict[int, str]
    logits: dict[int, float] = field(default_factory=dict)
    scores: dict[str, list[float]] = field(default_factory=dict)  # branch -> its scores, same order


class BranchCache:
    """Each query's per-branch chunk rankings, and rerank logits computed on demand."""

    def __init__(
        self, retriever: Any, queries: Mapping[str, str], depth: int, batch_size: int = 32, progress: bool = False
    ) -> None:
        self.retriever = retriever
        self.depth = depth
        enc = retriever.encoders
        self.present = [b for b, e in zip(BRANCHES, (enc.dense, enc.sparse, enc.bm25)) if e is not None]
        distance = collection_spec(enc, retriever.settings).distance
        self.lower_is_better = ("dense",) if distance in LOWER_IS_BETTER else ()
        self.queries: dict[str, _QueryCache] = {q: _QueryCache(t, {}, {}) for q, t in queries.items()}
        qids = list(queries)
        for b in self.present:
            opts = {f"{x}_weight": (1.0 if x == b else 0.0) for x in BRANCHES}
            bar = progress_bar(len(qids), f"tune: {b} rankings", progress)
            for start in range(0, len(qids), batch_size):
                batch = qids[start : start + batch_size]
                results = retriever.search_batch(
                    [queries[q] for q in batch],
                    top_k=depth,
                    prefetch_limit=depth,
                    rerank=False,
                    stage_scores=False,
                    multivector_rescore=False,  # each branch's own ranking
                    **opts,
                )
                for q, res in zip(batch, results):
                    c = self.queries[q]
                    c.branches[b] = [(h.id, h.doc_id) for h in res.hits]
                    c.scores[b] = [h.scores.final for h in res.hits]
                    for h in res.hits:
                        c.texts[h.id] = h.text
                bar.update(len(batch))
            bar.close()
        self.rerank_pairs = 0
        self.rerank_seconds = 0.0
        self.window = retriever.search_settings().rerank_window

    def fuse(
        self, q: str, k: int, weights: Sequence[float], prefetch: int, adaptive: bool = False, fusion: str = "rrf"
    ) -> list[tuple[int, float]]:
        """The branch rankings cut at ``prefetch`` and fused as the search fuses them (weighted
        RRF, or ``zscore``: :func:`~m3retriever.search.fusion.zscore_fuse`, which has no k):
        [(point id, score)] best first (``adaptive``: the weights adapted to the query as the
        search adapts them)."""
        c = self.queries[q]
        if adaptive:
            weights = self.adapted(q, weights, prefetch)
        if fusion == "zscore":
            lists = {b: list(zip((pid for pid, _ in c.branches[b][:prefetch]), c.scores[b])) for b in c.branches}
            return zscore_fuse(lists, dict(zip(BRANCHES, weights)), self.lower_is_better)
        scores: dict[int, float] = {}
        for b, w in zip(BRANCHES, weights):
            if w <= 0 or b not in c.branches:
                continue
            for pos, (pid, _) in enumerate(c.branches[b][:prefetch]):
                # Qdrant's weighted RRF: 1 / ((rank0 + 1) / w + k - 1), i.e. 1 / (k + rank0)
                # when w == 1 (ranks counted from 0)
                scores[pid] = scores.get(pid, 0.0) + 1.0 / ((pos + 1) / w + k - 1)
        return sorted(scores.items(), key=lambda x: (-x[1], x[0]))

    def adapted(self, q: str, weights: Sequence[float], prefetch: int) -> tuple[float, ...]:
        """``weights`` (dense, sparse, BM25) adapted to query ``q`` (:mod:`m3retriever.search.adaptive`)."""
        c = self.queries[q]
        searched = {b: w for b, w in zip(BRANCHES, weights) if w > 0 and c.branches.get(b)}
        rankings = {b: [pid for pid, _ in c.branches[b][:prefetch]] for b in searched}
        adapted = adapted_weights(searched, rankings)
        return tuple(adapted.get(b, 0.0) for b in BRANCHES)

    def logits(self, q: str, pids: Sequence[int]) -> np.ndarray:
        c = self.queries[q]
        missing = [p for p in pids if p not in c.logits]
        if missing and self.retriever.reranker is not None:
            t0 = time.perf_counter()
            # Read as the search reads them (the configured rerank window).
            matcher = Matcher(c.text, analyzer_of(self.retriever.encoders.bm25))
            texts = [c.texts[p] for p in missing]
            values = read_and_score(self.retriever.reranker, c.text, texts, self.window, matcher).logits
            self.rerank_seconds += time.perf_counter() - t0
            self.rerank_pairs += len(missing)
            c.logits.update({p: float(v) for p, v in zip(missing, values)})
        return np.array([c.logits[p] for p in pids], dtype=np.float64)

    def self_matched(self) -> list[str]:
        """The query ids some branch retrieved as a document id."""
        return sorted(q for q, c in self.queries.items() if any(d == q for lst in c.branches.values() for _, d in lst))

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


@dataclass
class Sweep:
    """Scores search settings locally from a :class:`BranchCache`.

    Attributes:
        cache: Each query's branch rankings and rerank logits.
        judged: Judgements of the cached queries.
        metric: Metric that ranks the fusion settings.
        metrics: Metrics reported for each setting.
        resolved: The retriever's resolved search settings (its configured setting).
        keep_self_matches: Score a document whose id equals the query id (BEIR drops it).
        progress: Show progress bars on stderr.
    """

    cache: BranchCache
    judged: Mapping[str, Mapping[str, int]]
    metric: str
    metrics: Sequence[str]
    resolved: Any
    keep_self_matches: bool = False
    progress: bool = False
    qids: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.qids = list(self.cache.queries)

    def fuse_all(self, k: int, w: Sequence[float], pf: int) -> dict[str, Any]:
        """Each query's fused candidates for one fusion setting."""
        adaptive = bool(getattr(self.resolved, "adaptive", False))
        fusion = str(getattr(self.resolved, "fusion", "rrf"))
        return {q: self.cache.fuse(q, k, w, pf, adaptive, fusion) for q in self.qids}

    def row(
        self, k: int, w: Sequence[float], pf: int, ro: tuple[int, float] | None, fused: Mapping[str, Any]
    ) -> dict[str, Any]:
        """One setting and its scores (``ro``: rerank depth and weight; ``None``: no rerank)."""
        run = {
            q: ranking_to_scores(
                _final_ranking(self.cache, q, fused[q], ro[0] if ro else 0, ro[1] if ro else None, RANK_DEPTH)
            )
            for q in self.qids
        }
        if not self.keep_self_matches:
            run = drop_self_matches(run)
        return {
            "rrf_k": k,
            "dense_weight": w[0],
            "sparse_weight": w[1],
            "bm25_weight": w[2],
            "prefetch_limit": pf,
            "rerank": ro is not None,
            "rerank_depth": ro[0] if ro else None,
            "rerank_weight": ro[1] if ro else None,
            **score(self.judged, run, self.metrics),
        }

    def rows(
        self,
        fusion: Iterable[tuple[int, Sequence[float], int]],
        rerank_opts: Sequence[tuple[int, float]],
        *,
        keep_fusion: bool,
        top_settings: int | None,
    ) -> list[dict[str, Any]]:
        """Score every (rrf_k, weights, prefetch_limit) setting in ``fusion`` without reranking,
        then every (rerank depth, rerank weight) in ``rerank_opts`` on the best of them.

        Args:
            fusion: Fusion settings.
            rerank_opts: Rerank settings (empty: no rerank stage).
            keep_fusion: Report the settings without reranking too.
            top_settings: Fusion settings reranked, the best by :attr:`metric` (``None``: all).

        Returns:
            One row per setting scored.
        """
        # Stage 1: every fusion setting without reranking (cheap: local RRF over cached rankings).
        settings = list(fusion)
        with progress_bar(len(settings), "tune: fusion settings", self.progress, unit="setting") as bar:
            fusion_rows = []
            for k, w, pf in settings:
                fusion_rows.append(self.row(k, w, pf, None, self.fuse_all(k, w, pf)))
                bar.update()
        rows: list[dict[str, Any]] = list(fusion_rows) if keep_fusion else []
        # Stage 2: rerank depths and weights on the best fusion settings only.
        if rerank_opts:
            rows += self._rerank_rows(self._rerank_candidates(fusion_rows, top_settings), rerank_opts)
        return rows

    def _rerank_candidates(self, fusion_rows: list[dict[str, Any]], top_settings: int | None) -> list[dict[str, Any]]:
        """The best ``top_settings`` fusion rows, and the configured setting's row."""
        ranked = sorted(fusion_rows, key=lambda r: -r[self.metric])
        chosen = ranked if top_settings is None else ranked[: max(1, top_settings)]
        current = self.configured(fusion_rows, rerank=False)
        if current is not None and current not in chosen:
            chosen.append(current)  # the configured setting is always measured with rerank too
        logger.info("tune: reranking %d of %d fusion settings", len(chosen), len(fusion_rows))
        return chosen

    def _rerank_rows(
        self, chosen: Sequence[Mapping[str, Any]], rerank_opts: Sequence[tuple[int, float]]
    ) -> list[dict[str, Any]]:
        rows = []
        total = len(chosen) * len(rerank_opts)
        with progress_bar(total, "tune: rerank settings", self.progress, unit="setting") as bar:
            for fr in chosen:
                w = (fr["dense_weight"], fr["sparse_weight"], fr["bm25_weight"])
                fused = self.fuse_all(fr["rrf_k"], w, fr["prefetch_limit"])  # once per fusion setting
                for ro in rerank_opts:
                    rows.append(self.row(fr["rrf_k"], w, fr["prefetch_limit"], ro, fused))
                    bar.update()
        return rows

    def calibration_pairs(self, row: Mapping[str, Any]) -> tuple[list[float], list[bool]]:
        """(rerank logit, relevant) of every candidate a reranking row's setting reranks, over
        every query (self-matches left out unless kept)."""
        w = (row["dense_weight"], row["sparse_weight"], row["bm25_weight"])
        fused = self.fuse_all(row["rrf_k"], w, row["prefetch_limit"])
        logits: list[float] = []
        labels: list[bool] = []
        for q in self.qids:
            head = [p for p, _ in fused[q][: row["rerank_depth"]]]
            doc, judged = self.cache.doc_of(q), self.judged.get(q, {})
            for p, logit in zip(head, self.cache.logits(q, head)):
                if self.keep_self_matches or doc[p] != q:
                    logits.append(float(logit))
                    labels.append(judged.get(doc[p], 0) > 0)
        return logits, labels

    def configured(self, rows: Sequence[dict[str, Any]], *, rerank: bool) -> dict[str, Any] | None:
        """The row with the retriever's configured settings (``None`` if it was not swept)."""
        return _matching(rows, self.resolved, self.cache.present, rerank=rerank)
