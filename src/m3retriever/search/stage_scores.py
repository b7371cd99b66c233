"""Scores of a query's candidates per stage, and the score helpers the search uses.

:class:`Scores` holds one query's fused candidates' scores (fused, multivector, rerank, final)
by fused position; :func:`hit_stage_scores` assembles a hit's :class:`~m3retriever.types.StageScores`
from them and the branches' own rankings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from m3retriever.store.schema import BM25, DENSE, DENSE2, SPARSE, ScoredRecord
from m3retriever.types import StageScores

__all__ = ["FUSED", "Scores", "hit_stage_scores", "sigmoid", "calibrated", "minmax", "tie_break"]

FUSED = "fused"
"""Stage name of the fused ranking fetched on its own (beside a multivector-rescored one)."""


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def calibrated(logits: np.ndarray, slope: float, bias: float) -> np.ndarray:
    """Confidence from rerank logits: ``sigmoid(slope * logit + bias)`` (Platt scaling)."""
    return sigmoid(slope * np.asarray(logits, dtype=np.float64) + bias)


def tie_break(records: Sequence[ScoredRecord]) -> list[ScoredRecord]:
    """Keep the engine's order but sort runs of equal scores by point id."""
    out: list[ScoredRecord] = []
    run: list[ScoredRecord] = []
    for r in records:
        if run and abs(r.score - run[0].score) > 1e-9 * max(1.0, abs(r.score)):
            out.extend(sorted(run, key=lambda x: x.id))
            run = []
        run.append(r)
    out.extend(sorted(run, key=lambda x: x.id))
    return out


def minmax(x: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] over the candidates (all ones when every value is equal)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < 1e-12:
        return np.ones_like(x)
    return (x - lo) / (hi - lo)


@dataclass
class Scores:
    """Scores of one query's fused candidates, indexed by fused position (0-based)."""

    fused: np.ndarray | None
    final: np.ndarray
    multivector: np.ndarray | None = None
    logits: np.ndarray | None = None
    probs: np.ndarray | None = None
    confidence: np.ndarray | None = None
    rerank_rank: dict[int, int] = field(default_factory=dict)
    relevance: np.ndarray | None = None
    relevance_rank: dict[int, int] = field(default_factory=dict)
    doc_best: dict[str, int] = field(default_factory=dict)


def hit_stage_scores(
    ranks: Mapping[str, Mapping[str, tuple[int, float]]],
    scores: Scores,
    point_id: str,
    i: int,
    final_rank: int,
    single: bool,
) -> StageScores:
    """Every stage's score and rank of the fused candidate at position ``i``."""
    d = ranks.get(DENSE, {}).get(point_id)
    sp = ranks.get(SPARSE, {}).get(point_id)
    bm = ranks.get(BM25, {}).get(point_id)
    fu: tuple[int, float] | None = None
    if scores.multivector is not None:  # the fused ranking came on its own
        fu = ranks.get(FUSED, {}).get(point_id)
    elif not single and scores.fused is not None:
        fu = (i + 1, float(scores.fused[i]))
    mv = scores.multivector
    d2 = ranks.get(DENSE2, {}).get(point_id)
    return StageScores(
        dense=d[1] if d else None,
        dense_rank=d[0] if d else None,
        sparse=sp[1] if sp else None,
        sparse_rank=sp[0] if sp else None,
        bm25=bm[1] if bm else None,
        bm25_rank=bm[0] if bm else None,
        dense2=d2[1] if d2 else None,
        dense2_rank=d2[0] if d2 else None,
        fused=fu[1] if fu else None,
        fused_rank=fu[0] if fu else None,
        multivector=float(mv[i]) if mv is not None else None,
        multivector_rank=i + 1 if mv is not None else None,
        rerank_logit=float(scores.logits[i]) if scores.logits is not None else None,
        rerank=float(scores.probs[i]) if scores.probs is not None else None,
        rerank_rank=scores.rerank_rank.get(i),
        confidence=float(scores.confidence[i]) if scores.confidence is not None else None,
        final=float(scores.final[i]),
        final_rank=final_rank,
        relevance_rank=scores.relevance_rank.get(i),
    )
