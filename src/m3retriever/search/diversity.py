"""Diverse hits: at most N chunks per document, and maximal marginal relevance (MMR).

Both work on an ordering of candidates (indexes into the candidate list, best first) and
return another ordering; the searcher applies them after the rerank stage, to the final order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from m3retriever.store.schema import DENSE, ScoredRecord

__all__ = ["cap_per_doc", "mmr_order", "best_rank_by_doc", "diversify", "diversify_records"]


def cap_per_doc(order: Sequence[int], doc_ids: Sequence[str], max_per_doc: int) -> list[int]:
    """``order`` without the chunks beyond the first ``max_per_doc`` of each document.

    Args:
        order: Candidate indexes, best first.
        doc_ids: Document id of each candidate (indexed like the candidates).
        max_per_doc: Chunks kept per document (at least 1).

    Returns:
        The kept indexes in their original order: a document keeps its best chunks, and the
        places of the dropped ones go to the candidates after them.
    """
    seen: dict[str, int] = {}
    out = []
    for i in order:
        n = seen.get(doc_ids[i], 0)
        if n < max_per_doc:
            seen[doc_ids[i]] = n + 1
            out.append(i)
    return out


def best_rank_by_doc(order: Sequence[int], doc_ids: Sequence[str]) -> dict[str, int]:
    """The 1-based position in ``order`` of each document's first (best) chunk."""
    best: dict[str, int] = {}
    for rank, i in enumerate(order, 1):
        best.setdefault(doc_ids[i], rank)
    return best


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: np.ndarray = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return out


def mmr_order(order: Sequence[int], relevance: np.ndarray, vectors: np.ndarray, diversity: float) -> list[int]:
    """Reorder ``order`` greedily by maximal marginal relevance.

    Each step takes the candidate with the highest ``(1 - diversity) * relevance - diversity *
    (its largest cosine similarity to a chunk already taken)``; ties go to the earlier one in
    ``order``. ``diversity`` 0 keeps ``order``.

    Args:
        order: Candidate indexes, best first.
        relevance: Relevance of each candidate, higher is better (indexed like the candidates).
            It is min-max scaled over ``order`` so it is on the similarities' scale.
        vectors: One dense vector per candidate (rows, indexed like the candidates).
        diversity: Weight of novelty against relevance, in [0, 1].

    Returns:
        Every index of ``order``, in MMR order.
    """
    idx = list(order)
    if diversity <= 0.0 or len(idx) <= 1:
        return idx
    rel = np.asarray(relevance, dtype=np.float64)[idx]
    span = float(rel.max() - rel.min())
    rel = (rel - rel.min()) / span if span > 1e-12 else np.ones_like(rel)
    unit = _unit_rows(np.asarray(vectors, dtype=np.float64)[idx])
    sims = unit @ unit.T
    max_sim = np.full(len(idx), -np.inf)
    left = np.ones(len(idx), dtype=bool)
    out = []
    for step in range(len(idx)):
        novelty = np.where(np.isfinite(max_sim), max_sim, 0.0) if step else np.zeros(len(idx))
        score = (1.0 - diversity) * rel - diversity * novelty
        score[~left] = -np.inf
        pick = int(np.argmax(score))  # the first of equal scores: the better ranked one
        out.append(idx[pick])
        left[pick] = False
        max_sim = np.maximum(max_sim, sims[pick])
    return out


def diversify(
    order: Sequence[int],
    doc_ids: Sequence[str],
    relevance: np.ndarray,
    vectors: np.ndarray | None,
    *,
    max_per_doc: int | None,
    mmr: float | None,
) -> tuple[list[int], dict[str, int]]:
    """MMR (when ``mmr`` is set) then the per-document cap (when ``max_per_doc`` is set).

    Returns:
        The new order, and the 1-based rank each document's best chunk had in ``order``.
    """
    best = best_rank_by_doc(order, doc_ids)
    out = list(order)
    if mmr is not None and vectors is not None:
        out = mmr_order(out, relevance, vectors, mmr)
    if max_per_doc is not None:
        out = cap_per_doc(out, doc_ids, max_per_doc)
    return out, best


def diversify_records(
    order: Sequence[int],
    records: Sequence[ScoredRecord],
    relevance: np.ndarray,
    max_per_doc: int | None,
    mmr: float | None,
) -> tuple[list[int], dict[str, int]]:
    """:func:`diversify` over stored records (their ``doc_id`` and ``dense`` vector)."""
    doc_ids = [str(r.payload.get("doc_id", "")) for r in records]
    vectors = None
    if mmr is not None and records:
        vectors = np.asarray([r.vectors.get(DENSE) for r in records], dtype=np.float64)
    return diversify(order, doc_ids, relevance, vectors, max_per_doc=max_per_doc, mmr=mmr)
