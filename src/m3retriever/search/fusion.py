"""Fusion of the branches' own rankings by their scores (``search.fusion = "zscore"``).

Each branch's scores over the candidates it returned are standardised (zero mean, unit
variance over that list: Montague and Aslam's ZMUV normalisation, CIKM 2001) and shifted so its
lowest candidate counts 0, the same as a chunk the branch did not return; a chunk's fused score
is the weighted sum over the branches (CombSUM). A branch whose first hit stands far above the
rest of its list (a confident match) therefore outweighs one whose scores are flat, query by
query, where reciprocal rank fusion gives every branch's first hit the same vote whatever its
margin. On a collection where a lexical branch is weak (natural-language queries against code)
that is what keeps the dense branch's clear winners on top; measured in docs/benchmarks.md
("Fusion by scores").

The engine's own score fusion (``dbsf``) takes no branch weights and clips each score to three
standard deviations around the mean, which removes exactly that margin; this one is computed
from each branch's own ranking, which the search reads in one batched store call.
"""

from __future__ import annotations

import math
from typing import Hashable, Mapping, Sequence, TypeVar

__all__ = ["LOWER_IS_BETTER", "zscore_fuse"]

K = TypeVar("K", bound=Hashable)

LOWER_IS_BETTER = frozenset({"euclid", "manhattan"})
"""Dense distances whose scores fall as relevance grows."""


def zscore_fuse(
    lists: Mapping[str, Sequence[tuple[K, float]]],
    weights: Mapping[str, float],
    lower_is_better: Sequence[str] = (),
) -> list[tuple[K, float]]:
    """Fuse each branch's ``(id, score)`` list (best first) by standardised scores.

    Args:
        lists: Each branch's candidates with the scores it gave them.
        weights: Each branch's weight; a branch with no positive weight does not count.
        lower_is_better: Branches whose scores are distances (negated before standardising).

    Returns:
        ``(id, fused score)`` of every candidate, best first, equal scores in id order.
    """
    fused: dict[K, float] = {}
    for name, ranked in lists.items():
        w = weights.get(name, 0.0)
        if w <= 0 or not ranked:
            continue
        sign = -1.0 if name in lower_is_better else 1.0
        scores = [sign * s for _, s in ranked]
        mean = math.fsum(scores) / len(scores)
        sd = math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / len(scores))
        low, high = min(scores), max(scores)
        # Scores too close for their variance to be represented are spread over [0, 1]; a list
        # of equal scores (or one candidate) carries no margin: each counts 1.
        scale = sd if sd > 0 else (high - low)
        for (key, _), s in zip(ranked, scores):
            z = (s - low) / scale if scale > 0 else 1.0
            fused[key] = fused.get(key, 0.0) + w * z
    return sorted(fused.items(), key=lambda kv: (-kv[1], str(kv[0])))
