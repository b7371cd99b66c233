"""The reranker interface: a cross-encoder that scores (query, passage) pairs."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["RerankerOptions", "RerankerSpec", "Reranker"]


@dataclass(frozen=True)
class RerankerOptions:
    """Options every reranker factory accepts.

    Attributes:
        model: Hub id or local path; ``None`` uses the reranker's default model.
        batch_size: Pairs per forward pass.
        max_length: Maximum tokens of query plus passage; longer pairs are truncated
            (passage first).
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
    """

    name: str
    model: str
    max_length: int


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
