"""Which part of a long passage a cross-encoder pair reads.

A pair holds the query and at most ``budget`` tokens of the passage
(:meth:`~m3retriever.rerankers.base.Reranker.passage_budget`). A passage longer than that is
read through windows of ``budget`` consecutive tokens, cut from the passage's own text (no
character is rewritten):

* ``first``: the window at its start (what a pair cut at its maximum length reads).
* ``match``: the one window holding the most of the query's words (each word counted once,
  then more occurrences). Given the passage's sentence starts (:func:`sentence_starts`) the
  window begins at one of them, the one with the least text before its first word among equals;
  without them it is centred on its words. A passage whose first window is as good, or that has
  none of the query's words, is read from its start. One pair per passage, as ``first``.
* ``maxp``: up to ``max_windows`` windows spread evenly over the passage (the first and the
  last among them); the passage's score is its best window's (MaxP, Dai & Callan 2019). Up to
  ``max_windows`` pairs per long passage.

Words are located by the caller (the search's word matcher): each is a character span with a
key, the analyzed word, so the functions here know nothing of languages.
"""

from __future__ import annotations

import bisect
import math
from typing import Literal, Sequence

from m3retriever.rerankers.base import TokenSpans

__all__ = ["WindowStrategy", "WINDOW_STRATEGIES", "Mark", "windows", "window_text", "sentence_starts"]

WindowStrategy = Literal["first", "match", "maxp"]
WINDOW_STRATEGIES: tuple[str, ...] = ("first", "match", "maxp")

Mark = tuple[int, int, str]
"""One occurrence of a query word in the passage: character start, end and the word's key."""


def windows(
    spans: TokenSpans,
    budget: int,
    strategy: WindowStrategy,
    marks: Sequence[Mark] = (),
    max_windows: int = 4,
    sentences: Sequence[int] | None = None,
) -> list[tuple[int, int]]:
    """The token windows ``[start, end)`` a passage is read through.

    Args:
        spans: The passage's token spans (:meth:`~m3retriever.rerankers.base.Reranker.token_spans`).
        budget: Passage tokens one pair holds (at least 1).
        strategy: ``first``, ``match`` or ``maxp`` (see the module's description).
        marks: Where the query's words occur (``match`` only).
        max_windows: Most windows ``maxp`` reads (at least 1).
        sentences: Tokens that begin a sentence or a line (:func:`sentence_starts`); with
            them a ``match`` window begins at one of them, else it is centred on its words.

    Returns:
        One window (``first``, ``match``, or any passage of at most ``budget`` tokens), or up
        to ``max_windows`` (``maxp``), in order.
    """
    n = len(spans)
    budget = max(1, budget)
    if n <= budget:
        return [(0, n)]
    if strategy == "match":
        if sentences is None:
            start = _best_start(spans, budget, marks)
        else:
            start = _best_sentence_start(spans, budget, marks, sentences)
        return [(start, start + budget)]
    if strategy == "maxp":
        last = n - budget
        k = max(1, min(max_windows, math.ceil(last / max(1, budget // 2)) + 1))
        starts = sorted({round(i * last / (k - 1)) for i in range(k)}) if k > 1 else [0]
        return [(s, s + budget) for s in starts]
    return [(0, budget)]


def sentence_starts(text: str, spans: TokenSpans) -> list[int]:
    """The tokens of ``text`` that begin a sentence or a line: the first token, and each token
    after a line break, after a token ending in ``.``, ``!`` or ``?`` followed by white space
    and a word that is not lower case (so "e.g. here" goes on), or after an ideographic full
    stop, exclamation or question mark."""
    out = [0] if spans else []
    for i in range(1, len(spans)):
        gap = text[spans[i - 1][1] : spans[i][0]]
        ended = text[spans[i - 1][1] - 1] in _ENDS and gap[:1].isspace() and not text[spans[i][0]].islower()
        if "\n" in gap or ended or text[spans[i - 1][1] - 1] in "\u3002\uff01\uff1f":
            out.append(i)
    return out


_ENDS = ".!?"


def window_text(text: str, spans: TokenSpans, window: tuple[int, int]) -> str:
    """The passage's text from its window's first token to its last (the whole text's start
    or end where the window reaches it, so nothing before the first token is lost)."""
    start, end = window
    a = 0 if start == 0 else spans[start][0]
    b = len(text) if end >= len(spans) else spans[end - 1][1]
    return text[a:b]


def _best_start(spans: TokenSpans, budget: int, marks: Sequence[Mark]) -> int:
    """The first token of the window of ``budget`` tokens holding the most distinct marked
    words, then the most marks.

    The passage's start when its first window is as good as any (a passage's start often
    carries its title); else the best window is centred on the marks it holds, so the text
    around them is read too.
    """
    if not marks:
        return 0
    at = _mark_tokens(spans, marks)
    n = len(spans)
    last_start = n - budget
    best, best_score = 0, (-1, -1)
    # A best window can always be moved right until its first token holds a mark.
    for start in sorted({0, *(min(i, last_start) for i, _ in at)}):
        inside = [key for i, key in at if start <= i < start + budget]
        score = (len(set(inside)), len(inside))
        if score > best_score:
            best, best_score = start, score
    if best == 0:
        return 0
    held = [i for i, _ in at if best <= i < best + budget]
    first, last = held[0], held[-1]
    centred = (first + last + 1) // 2 - budget // 2
    return max(max(0, last - budget + 1), min(centred, first, last_start))


def _best_sentence_start(spans: TokenSpans, budget: int, marks: Sequence[Mark], sentences: Sequence[int]) -> int:
    """The first token of the window of ``budget`` tokens that begins a sentence (or the last
    window) and holds the most distinct marked words, then the most marks, then the one whose
    first mark is closest to its start; the passage's start when it is as good as any."""
    if not marks:
        return 0
    at = _mark_tokens(spans, marks)
    last_start = len(spans) - budget
    best, best_score = 0, (-1, -1, 0)
    for start in sorted({0, last_start, *(s for s in sentences if s <= last_start)}):
        inside = [(i, key) for i, key in at if start <= i < start + budget]
        lead = inside[0][0] - start if inside else budget
        score = (len({key for _, key in inside}), len(inside), -lead)
        if score[:2] > best_score[:2] or (score[:2] == best_score[:2] and best != 0 and score > best_score):
            best, best_score = start, score
    return best


def _mark_tokens(spans: TokenSpans, marks: Sequence[Mark]) -> list[tuple[int, str]]:
    """Each mark as (index of the token it starts in, its key), in order (a word may begin
    inside a token)."""
    starts = [a for a, _ in spans]
    return sorted((max(0, bisect.bisect_right(starts, a) - 1), key) for a, _, key in marks)
