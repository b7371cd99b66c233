"""Token-aware chunking with the encoder's own tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from m3retriever.errors import ConfigError
from m3retriever.types import Chunk

__all__ = ["ChunkingConfig", "chunk_text"]


@dataclass(frozen=True)
class ChunkingConfig:
    """How documents are cut into chunks.

    Attributes:
        max_tokens: Maximum tokens per chunk (in the encoder's tokenizer).
        overlap: Tokens shared by consecutive chunks.
    """

    max_tokens: int = 512
    overlap: int = 64

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ConfigError(f"chunking max_tokens must be >= 8, got {self.max_tokens}")
        if not 0 <= self.overlap < self.max_tokens // 2 + 1:
            raise ConfigError(
                f"chunking overlap must be between 0 and max_tokens/2 ({self.max_tokens // 2}), "
                f"got {self.overlap}"
            )


def chunk_text(
    doc_id: str,
    text: str,
    token_offsets: Callable[[str], list[tuple[int, int]]],
    config: ChunkingConfig,
) -> list[Chunk]:
    """Cut ``text`` into windows of at most ``config.max_tokens`` tokens.

    Chunks are character slices of the original text, so no text is rewritten; a text that
    fits in one window is one chunk holding the whole text. Consecutive chunks share
    ``config.overlap`` tokens. A text with no tokens (whitespace only) yields no chunks.

    Args:
        doc_id: The document id recorded on each chunk.
        text: The document text.
        token_offsets: The encoder's tokenizer as ``text -> [(start, end), ...]``.
        config: Window and overlap sizes.

    Returns:
        The chunks, in order, with ``chunk_index`` from 0.
    """
    spans = [(s, e) for s, e in token_offsets(text) if e > s]
    if not spans:
        return []
    if len(spans) <= config.max_tokens:
        return [Chunk(doc_id, 0, text, 0, len(text))]
    chunks: list[Chunk] = []
    step = config.max_tokens - config.overlap
    i = 0
    while True:
        last = min(i + config.max_tokens, len(spans)) - 1
        # A chunk runs from its first token (the text's start for chunk 0) up to the next
        # token after its window (the text's end for the last chunk), so punctuation and
        # whitespace between tokens are kept.
        start = 0 if i == 0 else spans[i][0]
        end = len(text) if last == len(spans) - 1 else spans[last + 1][0]
        chunks.append(Chunk(doc_id, len(chunks), text[start:end], start, end))
        if last == len(spans) - 1:
            break
        i += step
    return chunks
