"""Matched terms a person can read: the query's words that occur in a hit's text, with the
character spans of every occurrence (``Hit.matches``; ``Hit.matched_terms`` are the words).

Words are compared after a word-level analyzer, the same for the query and the text:

* A text is split into words: runs of Unicode letters and digits (the BM25 analyzer's split),
  a word carrying on over combining marks (``"cafe\\u0301"`` is one word); each Han ideograph
  is a word of its own, as scripts written without spaces have no other word boundary here
  (kana, Hangul and Thai runs stay whole runs).
* Each word is put in Unicode NFC and case folded (``"Straße"`` and ``"STRASSE"`` compare
  equal), then given to the retriever's lexical analyzer: the BM25 encoder's when it has one
  (English stopwords dropped, Snowball stemming: ``"running"`` in the query matches
  ``"runs"`` in the text, and the span covers the whole word ``runs``), else the English
  stopwords are dropped and the folded word is compared as it is.

A term is the query's own word (NFC, lowercased), listed once, in the order of the query;
query words with the same analyzed form are one term, named by the first. Nothing here reads
the store: it runs on the returned hits' texts only.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Callable, Protocol, Sequence

from m3retriever.encoders.bm25 import ENGLISH_STOPWORDS
from m3retriever.types import MatchedTerm

__all__ = ["Matcher", "WordAnalyzer", "fold_words", "word_spans", "analyzer_of"]

WordAnalyzer = Callable[[Sequence[str]], Sequence["str | None"]]
"""Analyzed form of each of a list of words (``None``: a word never matched, a stopword)."""

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_WORD_RE = re.compile(rf"[{_HAN}]|(?:(?![{_HAN}])[^\W_])+")
"""A Han ideograph, or a run of other Unicode letters or digits."""


class _HasWordAnalyzer(Protocol):
    def analyze_words(self, words: Sequence[str]) -> Sequence[str | None]: ...


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of ``text`` (see the module's description)."""
    spans: list[tuple[int, int]] = []
    joins = False  # the last word ended on combining marks: a letter right after carries it on
    n = len(text)
    for m in _WORD_RE.finditer(text):
        start, end = m.span()
        stop = end
        while stop < n and unicodedata.category(text[stop]).startswith("M"):
            stop += 1
        if joins and spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], stop)
        else:
            spans.append((start, stop))
        joins = stop > end
    return spans


def fold_words(words: Sequence[str]) -> list[str | None]:
    """The analyzer without a BM25 encoder: the (folded) word itself, ``None`` for an English
    stopword."""
    return [None if w in ENGLISH_STOPWORDS else w for w in words]


def analyzer_of(encoder: object | None) -> WordAnalyzer:
    """The word analyzer of a lexical encoder (its ``analyze_words``), else :func:`fold_words`."""
    analyze = getattr(encoder, "analyze_words", None)
    return analyze if callable(analyze) else fold_words


def _fold(word: str) -> str:
    return unicodedata.normalize("NFC", word).casefold()


class Matcher:
    """Finds one query's words in texts.

    Args:
        query: The query as searched.
        analyzer: The word analyzer (:func:`analyzer_of`).
    """

    def __init__(self, query: str, analyzer: WordAnalyzer = fold_words) -> None:
        self._analyze = analyzer
        self._keys: dict[str, str | None] = {}
        self.terms: dict[str, str] = {}
        """Analyzed form -> the query's word it names, in the order of the query."""
        for a, b in word_spans(query):
            word = query[a:b]
            key = self.key(word)
            if key is not None:
                self.terms.setdefault(key, unicodedata.normalize("NFC", word).lower())

    def keys(self, words: Sequence[str]) -> list[str | None]:
        """The analyzed form of each word (remembered across texts: one analyzer call per
        text for the words not seen before)."""
        folded = [_fold(w) for w in words]
        new = list(dict.fromkeys(w for w in folded if w not in self._keys))
        if new:
            self._keys.update(zip(new, self._analyze(new)))
        return [self._keys[w] for w in folded]

    def key(self, word: str) -> str | None:
        """The analyzed form of one word."""
        return self.keys([word])[0]

    def match(self, text: str) -> tuple[MatchedTerm, ...]:
        """The query's terms found in ``text``, in the query's order, each with the spans of
        all its occurrences in ``text`` (in order)."""
        if not self.terms:
            return ()
        spans = word_spans(text)
        found: dict[str, list[tuple[int, int]]] = {}
        for span, key in zip(spans, self.keys([text[a:b] for a, b in spans])):
            if key is not None and key in self.terms:
                found.setdefault(key, []).append(span)
        return tuple(MatchedTerm(term, tuple(found[key])) for key, term in self.terms.items() if key in found)
