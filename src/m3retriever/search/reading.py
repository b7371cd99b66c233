"""What the reranker reads of each candidate: the part of a long chunk its pairs hold.

A cross-encoder pair holds the query and a bounded number of passage tokens (the reranker's
maximum length: 128 tokens in the ``small`` profile, 512 in the ``bge-m3`` ones). A chunk longer
than that is read through a window chosen by ``search.rerank_window``
(:mod:`m3retriever.rerankers.windows`): its start (``first``), the window holding most of the
query's words (``match``, located with the search's word matcher, the same words
``Hit.matches`` shows), or the best of a few windows (``maxp``). A reranker that does not
report its tokens (:meth:`~m3retriever.rerankers.base.Reranker.token_spans` is ``None``) reads
whole chunks as it always does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from m3retriever.rerankers.base import Reranker
from m3retriever.rerankers.windows import Mark, WindowStrategy, sentence_starts, window_text, windows
from m3retriever.search.matching import Matcher

__all__ = ["Reading", "read_and_score", "MAXP_WINDOWS"]

MAXP_WINDOWS = 4
"""Most windows ``maxp`` reads of one chunk."""


@dataclass(frozen=True)
class Reading:
    """The reranker's scores of the candidates and what it read of each.

    Attributes:
        logits: One logit per candidate (its best window's under ``maxp``).
        spans: Character span of each candidate's text its (best) pair read.
        pairs: Pairs scored (more than the candidates under ``maxp``).
    """

    logits: np.ndarray
    spans: list[tuple[int, int]]
    pairs: int


def read_and_score(
    reranker: Reranker,
    query: str,
    texts: Sequence[str],
    strategy: WindowStrategy,
    matcher: Matcher | None = None,
    max_windows: int = MAXP_WINDOWS,
    anchor: Literal["sentence", "centre"] = "centre",
) -> Reading:
    """Score ``texts`` against ``query`` reading each through ``strategy``'s window(s).

    Args:
        reranker: The reranker.
        query: The query as searched.
        texts: The candidates' texts.
        strategy: ``first``, ``match`` or ``maxp``.
        matcher: Finds the query's words in a text (``match``; ``None``: no words known, so
            ``match`` reads each chunk's start).
        max_windows: Most windows ``maxp`` reads of one chunk.
        anchor: Where a ``match`` window lies: centred on the query's words it holds
            (``centre``), or beginning at a sentence or line start (``sentence``; measured below
            ``centre`` on SciFact and on the demo's README chunk, kept for comparison in
            ``tests/benchmarks/bench_rerank_window.py``).
    """
    whole = [(0, len(t)) for t in texts]
    budget = reranker.passage_budget(query) if strategy != "first" and texts else None
    spans = reranker.token_spans(texts) if budget is not None else None
    if budget is None or spans is None or all(len(s) <= budget for s in spans):
        logits = np.asarray(reranker.score(query, list(texts)), dtype=np.float64)
        return Reading(logits, whole, len(texts))
    pairs: list[str] = []
    owner: list[int] = []
    read: list[tuple[int, int]] = []
    for i, (text, token_spans) in enumerate(zip(texts, spans)):
        long_match = strategy == "match" and len(token_spans) > budget
        marks = _marks(matcher, text) if long_match else ()
        sentences = sentence_starts(text, token_spans) if long_match and anchor == "sentence" else None
        for window in windows(token_spans, budget, strategy, marks, max_windows, sentences):
            piece = window_text(text, token_spans, window)
            start = 0 if window[0] == 0 else token_spans[window[0]][0]
            pairs.append(piece)
            owner.append(i)
            read.append((start, start + len(piece)))
    scored = np.asarray(reranker.score(query, pairs), dtype=np.float64)
    logits = np.full(len(texts), -np.inf)
    best = [-1] * len(texts)
    for j, (i, logit) in enumerate(zip(owner, scored)):
        if best[i] < 0 or logit > logits[i]:
            logits[i], best[i] = logit, j
    return Reading(logits, [read[j] for j in best], len(pairs))


def _marks(matcher: Matcher | None, text: str) -> list[Mark]:
    """Every occurrence of the query's words in ``text``, keyed by the word."""
    if matcher is None:
        return []
    return [(a, b, m.term) for m in matcher.match(text) for a, b in m.spans]
