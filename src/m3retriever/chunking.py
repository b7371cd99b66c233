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

    Chunks are character slices of the original text (from the first token's start to the
    last token's end), so no text is rewritten. Consecutive chunks share
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
        start, end = spans[0][0], spans[-1][1]
        return [Chunk(doc_id, 0, text[start:end], start, end)]
    chunks: list[Chunk] = []
    step = config.max_tokens - config.overlap
    i = 0
    while True:
        window = spans[i : i + config.max_tokens]
        start, end = window[0][0], window[-1][1]
        chunks.append(Chunk(doc_id, len(chunks), text[start:end], start, end))
        if i + config.max_tokens >= len(spans):
            break
        i += step
    return chunks
