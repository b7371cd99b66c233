"""Checks on a batch of strings handed to an encoder or a reranker."""

from __future__ import annotations

from typing import Sequence

from m3retriever.errors import InputError

__all__ = ["check_texts"]


def check_texts(texts: Sequence[str], what: str = "texts") -> list[str]:
    """Validate a batch of strings (a bare ``str`` is a mistake, not a batch of characters).

    Args:
        texts: The batch.
        what: What the batch holds, for the error message.

    Returns:
        The batch as a list.

    Raises:
        InputError: naming the offending item.
    """
    if isinstance(texts, str):
        raise InputError(f"{what} must be a sequence of strings, not a single string")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InputError(f"{what}[{i}] must be a str, got {type(text).__name__}")
    return out
