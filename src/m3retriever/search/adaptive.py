"""Per-query branch weights from what the branches themselves returned (no labels).

Before the fused query, each branch's own ranking of the query is read (the same lists the
stage scores report). A branch whose first hits the other branches also find is likely right
for this query; one whose first hits nobody else finds is likely not (a lexical branch
matching the common words of a long query, a dense model out of its language). Each branch's
configured RRF weight is scaled by

    floor + (1 - floor) * share

where ``share`` is the fraction of its top :data:`TOP` chunks that at least one other branch
also has in its top :data:`TOP`, and ``floor`` (:data:`FLOOR`) keeps a branch that is alone
in the running from being silenced. With a single branch (or none left) nothing changes.

Measured per collection and against the fixed weights in ``docs/benchmarks.md`` ("Adaptive
fusion"): the weights used for a query are reported on its result
(:attr:`~m3retriever.types.SearchResult.branch_weights`).
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

__all__ = ["FLOOR", "TOP", "adapted_weights", "agreement"]

TOP = 10
"""Chunks of each branch's ranking compared with the other branches'."""

FLOOR = 0.25
"""The share of its configured weight a branch keeps when no other branch agrees with it."""


def agreement(rankings: Mapping[str, Sequence[Hashable]], top: int = TOP) -> dict[str, float]:
    """Each branch's share of its first ``top`` ids that another branch also has in its first
    ``top`` (1.0 for a branch alone, or with an empty ranking: nothing to judge it by)."""
    heads = {name: list(ids[:top]) for name, ids in rankings.items()}
    out: dict[str, float] = {}
    for name, head in heads.items():
        others = set().union(*(set(h) for o, h in heads.items() if o != name and h))
        if not head or not others:
            out[name] = 1.0
            continue
        out[name] = sum(1 for i in head if i in others) / len(head)
    return out


def adapted_weights(
    weights: Mapping[str, float],
    rankings: Mapping[str, Sequence[Hashable]],
    *,
    top: int = TOP,
    floor: float = FLOOR,
) -> dict[str, float]:
    """The configured ``weights`` of the branches in ``rankings``, each scaled by its
    agreement with the others (see the module docstring).

    Args:
        weights: Configured RRF weight per branch.
        rankings: Each searched branch's own ranking of the query (ids, best first).
        top: Ids of each ranking compared.
        floor: The share of its weight a branch with no agreement keeps.
    """
    if len(rankings) < 2:
        return {name: weights[name] for name in rankings}
    share = agreement(rankings, top)
    return {name: weights[name] * (floor + (1.0 - floor) * share[name]) for name in rankings}
