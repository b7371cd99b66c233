"""The reranker interface: a cross-encoder that scores (query, passage) pairs."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = [
    "RerankerOptions",
    "RerankerSpec",
    "Reranker",
    "QUERY_SHARE",
    "PAIR_SPECIAL_TOKENS",
    "query_budget",
    "cut_to_tokens",
    "TokenSpans",
]

TokenSpans = list[tuple[int, int]]
"""Character spans of a text's tokens (special tokens left out), in order."""

# How a (query, passage) pair is fitted into a cross-encoder's maximum length: the query keeps
# up to query_budget() tokens (three quarters of the pair, as BAAI's own FlagEmbedding reranker
# does for bge-reranker-v2-m3); the passage gets the rest and is the side that is cut. A query
# is never squeezed out by a long passage, and a long query never takes the whole pair.

QUERY_SHARE = 0.75
"""Share of a pair's tokens the query may take (FlagEmbedding's ``query_max_length`` default)."""

PAIR_SPECIAL_TOKENS = 4
"""Special tokens a pair can carry (XLM-R: ``<s> q </s></s> p </s>``; BERT has 3)."""


def query_budget(max_length: int) -> int:
    """Tokens of the query kept in a pair of ``max_length`` tokens.

    Three quarters of the pair, and never so many that the special tokens and one passage
    token no longer fit.

    Args:
        max_length: Maximum tokens of the pair, special tokens included.

    Returns:
        At least 1.
    """
    return max(1, min(int(max_length * QUERY_SHARE), max_length - PAIR_SPECIAL_TOKENS - 1))


def cut_to_tokens(text: str, offsets: Sequence[tuple[int, int]], n: int) -> str:
    """``text`` cut after its ``n``-th token.

    Args:
        text: The text.
        offsets: Character spans of its tokens (without special tokens), in order.
        n: Tokens to keep.

    Returns:
        ``text`` itself when it has at most ``n`` tokens, else its prefix up to the end of the
        ``n``-th token.
    """
    spans = [(a, b) for a, b in offsets if b > a]
    if len(spans) <= n:
        return text
    return text[: spans[n - 1][1]] if n > 0 else ""



@dataclass(frozen=True)
class RerankerOptions:
    """Options every reranker factory accepts.

    Attributes:
        model: Hub id or local path; ``None`` uses the reranker's default model.
        batch_size: Pairs per forward pass.
        max_length: Maximum tokens of query plus passage (special tokens included); in a
            longer pair the query keeps up to three quarters of it
            (:func:`query_budget`) and the passage is cut.
        device: ``"auto"``, ``"cpu"`` or a CUDA device.
    """

    model: str | None = None
    batch_size: int = 16
    max_length: int = 512
    device: str = "auto"


@dataclass(frozen=True)
class RerankerSpec:
    """Identity of a reranker.

    Attributes:
        name: Registered reranker name.
        model: Model id or path actually used.
        max_length: Maximum tokens per pair.
        max_query_length: Tokens of the query kept in a pair (the passage gets the rest);
            ``None`` when the reranker does not say.
    """

    name: str
    model: str
    max_length: int
    max_query_length: int | None = None


class Reranker(abc.ABC):
    """Scores query/passage pairs; higher is more relevant. Loads its model lazily."""

    @property
    @abc.abstractmethod
    def spec(self) -> RerankerSpec:
        """Name, model and limits of this reranker."""

    @abc.abstractmethod
    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """Return one raw logit per passage (float32 array, same order as ``passages``).

        Implementations should sort pairs by length internally to limit padding and
        must return scores in the caller's order.
        """

    def token_spans(self, texts: Sequence[str]) -> list[TokenSpans] | None:
        """Character spans of each text's tokens in this reranker's tokenizer, uncut.

        The search uses them to choose which part of a passage longer than a pair a pair reads
        (``search.rerank_window``). ``None`` (this default) says the reranker does not tell:
        such a reranker is handed whole passages and reads them as it always does (from
        their start).
        """
        return None

    def passage_budget(self, query: str) -> int | None:
        """Tokens of a passage that fit in one pair with ``query`` (``None`` when
        :meth:`token_spans` does not tell).

        The pair's maximum length less its special tokens and the query's tokens (cut to
        :func:`query_budget`).
        """
        spans = self.token_spans([query])
        if spans is None:
            return None
        spec = self.spec
        query_tokens = min(len(spans[0]), spec.max_query_length or query_budget(spec.max_length))
        return max(1, spec.max_length - PAIR_SPECIAL_TOKENS - query_tokens)
