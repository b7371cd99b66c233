"""Tokenizers: a ``tokenizer.json`` loaded as is (also as a lazily loaded pair, for the
ONNX encoders), and token offsets from a Hugging Face tokenizer without truncation or special
tokens (for the chunker)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from tokenizers import Tokenizer

__all__ = ["load_tokenizer", "load_tokenizer_pair", "TokenizerPair", "OffsetsTokenizer"]


def load_tokenizer(path: Path) -> "Tokenizer":
    """Load a ``tokenizer.json`` with any padding/truncation baked into the file removed."""
    import tokenizers
    tokenizer = tokenizers.Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def load_tokenizer_pair(path: Path, max_length: int) -> tuple["Tokenizer", "Tokenizer"]:
    """A ``tokenizer.json`` loaded twice: truncating at ``max_length`` (for encoding) and not
    truncating (for token offsets).

    Returns:
        ``(truncating, offsets)``.
    """
    truncating = load_tokenizer(path)
    truncating.enable_truncation(max_length)
    return truncating, load_tokenizer(path)


class TokenizerPair:
    """:func:`load_tokenizer_pair`'s two tokenizers, each loaded on its first use, once
    (thread-safe): a search needs only the truncating one, ingest's chunker only the other.

    Args:
        path: The ``tokenizer.json``.
        max_length: Where the encoding tokenizer truncates.
    """

    def __init__(self, path: Path, max_length: int) -> None:
        self._path = path
        self._max_length = max_length
        self._truncating: Tokenizer | None = None
        self._plain: Tokenizer | None = None
        self._lock = threading.Lock()

    def truncating(self) -> "Tokenizer":
        """The tokenizer that truncates at ``max_length`` (for encoding)."""
        tokenizer = self._truncating
        if tokenizer is None:
            with self._lock:
                if self._truncating is None:
                    loaded = load_tokenizer(self._path)
                    loaded.enable_truncation(self._max_length)
                    self._truncating = loaded
                tokenizer = self._truncating
        return tokenizer

    def plain(self) -> "Tokenizer":
        """The tokenizer without truncation (for token offsets)."""
        tokenizer = self._plain
        if tokenizer is None:
            with self._lock:
                if self._plain is None:
                    self._plain = load_tokenizer(self._path)
                tokenizer = self._plain
        return tokenizer

    def get(self) -> tuple["Tokenizer", "Tokenizer"]:
        """``(truncating, offsets)``: the truncating tokenizer (for encoding) and a
        non-truncating one (for offsets)."""
        return self.truncating(), self.plain()

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of ``text`` (no special tokens, no truncation)."""
        encoding = self.plain().encode(text, add_special_tokens=False)
        return [(int(s), int(e)) for s, e in encoding.offsets]


class OffsetsTokenizer:
    """Token offsets from a Hugging Face tokenizer, without truncation or special tokens.

    Fast tokenizers are copied once into a plain ``tokenizers.Tokenizer`` with padding and
    truncation off (the shared one may carry a ``tokenizer.json``'s fixed padding, and the
    wrapper warns about texts longer than the model).
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._plain: Any = None
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            import tokenizers

            plain = tokenizers.Tokenizer.from_str(backend.to_str())
            plain.no_padding()
            plain.no_truncation()
            self._plain = plain

    def __call__(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of ``text``."""
        if self._plain is not None:
            offsets = self._plain.encode(text, add_special_tokens=False).offsets
            return [(int(s), int(e)) for s, e in offsets]
        encoded = self._tokenizer(  # pragma: no cover - slow tokenizers only
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return [(int(s), int(e)) for s, e in encoded["offset_mapping"]]
