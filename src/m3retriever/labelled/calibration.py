"""Calibration of a hit's confidence on labelled queries: fitting it, and measuring it.

A hit's ``confidence`` is ``sigmoid(slope * rerank_logit + bias)`` (Platt scaling, Platt 1999).
:func:`fit_platt` fits ``slope`` and ``bias`` by maximum likelihood (Newton's method on the
logistic loss, with Platt's smoothed targets so that a separable sample does not send the
slope to infinity) on (logit, relevant) pairs: the reranked candidates of labelled queries,
a candidate relevant when its document is judged relevant. :func:`reliability` bins
confidences and compares each bin's mean confidence with its share of relevant hits; the
expected calibration error (ECE) is the bins' mean absolute gap weighted by their sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from m3retriever.errors import InputError

__all__ = ["Calibration", "ReliabilityBin", "Reliability", "fit_platt", "reliability"]


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration.

    Attributes:
        slope: Multiplies the logit (``confidence_slope``).
        bias: Added after (``confidence_bias``).
        pairs: (logit, label) pairs it was fitted on.
        positives: How many of them were relevant.
    """

    slope: float
    bias: float
    pairs: int
    positives: int

    def apply(self, logits: Sequence[float] | np.ndarray) -> np.ndarray:
        """The confidences of ``logits``."""
        z = self.slope * np.asarray(logits, dtype=np.float64) + self.bias
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability diagram: confidences in ``[low, high)`` (the last bin holds 1)."""

    low: float
    high: float
    count: int
    mean_confidence: float
    relevant_share: float


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram and its expected calibration error."""

    bins: tuple[ReliabilityBin, ...]
    ece: float
    count: int

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly representation."""
        return {
            "ece": self.ece,
            "count": self.count,
            "bins": [vars(b).copy() for b in self.bins],
        }


def fit_platt(logits: Sequence[float], labels: Sequence[bool], iterations: int = 100) -> Calibration:
    """Fit ``sigmoid(slope * logit + bias)`` to relevance labels.

    Args:
        logits: Rerank logits.
        labels: Whether each pair's document is relevant.
        iterations: Newton steps at most.

    Returns:
        The calibration (slope kept above 0: a reranker whose logits are unrelated to the labels
        gets a tiny slope, so every confidence is near the base rate).

    Raises:
        InputError: fewer than 2 pairs, lengths differ, or the labels are all equal (nothing
            to fit: label more queries).
    """
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if x.shape != y.shape or x.size < 2:
        raise InputError(f"calibration needs as many labels as logits, at least 2; got {x.size} and {y.size}")
    if not np.isfinite(x).all():
        raise InputError("calibration logits must be finite numbers")
    pos = int(y.sum())
    if pos == 0 or pos == y.size:
        raise InputError(
            f"calibration needs relevant and non-relevant candidates; all {y.size} are "
            f"{'relevant' if pos else 'non-relevant'}: label more queries"
        )
    # Platt's targets: (N+ + 1) / (N+ + 2) and 1 / (N- + 2) instead of 1 and 0.
    t = np.where(y, (pos + 1.0) / (pos + 2.0), 1.0 / (y.size - pos + 2.0))
    # Newton's method with backtracking (Lin, Lin & Weng 2007): a full step can overshoot
    # where the start is far from the optimum.
    a, b = 0.0, math.log((pos + 1.0) / (y.size - pos + 1.0))
    loss = _loss(a, b, x, t)
    for _ in range(iterations):
        p = 0.5 * (1.0 + np.tanh(0.5 * (a * x + b)))
        w = np.maximum(p * (1.0 - p), 1e-12)
        g = np.array([np.sum((p - t) * x), np.sum(p - t)])
        h = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        size = 1.0
        while size > 1e-10:
            na, nb = a - size * float(step[0]), b - size * float(step[1])
            new = _loss(na, nb, x, t)
            if new <= loss + 1e-4 * size * float(g @ (-step)):
                break
            size /= 2
        else:
            break
        a, b, loss = na, nb, new
        if abs(size * step).max() < 1e-9:
            break
    return Calibration(slope=max(a, 1e-6), bias=b, pairs=int(y.size), positives=pos)


def _loss(a: float, b: float, x: np.ndarray, t: np.ndarray) -> float:
    """Cross-entropy of ``sigmoid(a * x + b)`` against targets ``t`` (computed stably)."""
    z = a * x + b
    return float(np.sum(np.logaddexp(0.0, z) - t * z))


def reliability(
    confidences: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray, bins: int = 10
) -> Reliability:
    """The reliability diagram of ``confidences`` against ``labels`` in ``bins`` equal-width
    bins over [0, 1], and its expected calibration error (empty bins left out)."""
    c = np.clip(np.asarray(confidences, dtype=np.float64), 0.0, 1.0)
    y = np.asarray(labels, dtype=np.float64)
    if c.shape != y.shape:
        raise InputError(f"reliability needs one label per confidence; got {c.size} and {y.size}")
    index = np.minimum((c * bins).astype(int), bins - 1)
    out = []
    ece = 0.0
    for k in range(bins):
        inside = index == k
        n = int(inside.sum())
        if not n:
            continue
        conf, share = float(c[inside].mean()), float(y[inside].mean())
        out.append(ReliabilityBin(k / bins, (k + 1) / bins, n, conf, share))
        ece += n / max(1, c.size) * abs(conf - share)
    return Reliability(tuple(out), float(ece), int(c.size))
