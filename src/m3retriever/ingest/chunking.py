"""Token-aware chunking with the encoder's own tokenizer, cut at the document's headings first
when it has a structure (:attr:`~m3retriever.types.Document.structure`).

With a structure, the text is cut at every heading into pieces (:mod:`.sections`). Neighbouring
pieces are packed into one chunk while they fit in ``max_tokens``, except that a chunk closes
before a top-level heading (the shallowest level that occurs twice: a single title heading
above the rest is not one) once it holds a quarter of the budget (:data:`TINY_SHARE`): small
subsections share a chunk, and a chunk spans two top-level sections only when what it holds
before the second is tiny. A piece longer than the budget is cut into overlapping token
windows, as a document without structure is, moving a window's end back before a code block,
table or code cell that would be cut and fits in the budget whole.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, Sequence

from m3retriever.errors import ConfigError
from m3retriever.ingest.sections import Piece, common_path, pages_of, pieces, whole_blocks
from m3retriever.types import Chunk, Section

__all__ = ["ChunkingConfig", "chunk_text", "TINY_SHARE"]

TINY_SHARE = 4
"""A chunk closes before a top-level heading once it holds ``max_tokens // TINY_SHARE`` tokens
(docs/benchmarks.md, "Contextual chunk headers", gives the chunk counts this rule makes)."""


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
                f"chunking overlap must be between 0 and max_tokens/2 ({self.max_tokens // 2}), got {self.overlap}"
            )


def chunk_text(
    doc_id: str,
    text: str,
    token_offsets: Callable[[str], list[tuple[int, int]]],
    config: ChunkingConfig,
    structure: Sequence[Section] = (),
) -> list[Chunk]:
    """Cut ``text`` into chunks of at most ``config.max_tokens`` tokens.

    Chunks are character slices of the original text (``text[c.start:c.end] == c.text``), so
    no text is rewritten, and together they cover it; a text that fits in one window and has no
    heading structure is one chunk holding the whole text. Within a piece, consecutive windows
    share ``config.overlap`` tokens. A text with no tokens (whitespace only) yields no chunks.

    Args:
        doc_id: The document id recorded on each chunk.
        text: The document text.
        token_offsets: The encoder's tokenizer as ``text -> [(start, end), ...]``.
        config: Window and overlap sizes.
        structure: The document's sections (spans of ``text``); empty: by tokens alone.

    Returns:
        The chunks, in order, with ``chunk_index`` from 0, each with its heading path and
        pages.
    """
    spans = [(s, e) for s, e in token_offsets(text) if e > s]
    if not spans:
        return []
    starts = [s for s, _ in spans]
    parts = pieces(len(text), structure, spans) if structure else [Piece(0, len(text), (), 0)]
    blocks = whole_blocks(structure, starts) if structure else []
    ranges = _ranges(parts, spans, starts, blocks, config)
    return [
        Chunk(doc_id, i, text[a:b], a, b, path, pages_of(structure, a, b) if structure else ())
        for i, (a, b, path) in enumerate(ranges)
    ]


def _ranges(
    parts: Sequence[Piece],
    spans: Sequence[tuple[int, int]],
    starts: Sequence[int],
    blocks: Sequence[tuple[int, int]],
    config: ChunkingConfig,
) -> list[tuple[int, int, tuple[str, ...]]]:
    """``(start, end, heading path)`` of each chunk: pieces packed under the budget, long
    pieces cut into windows; a group without tokens joins the next chunk."""
    top = _top_level(parts)
    tiny = config.max_tokens // TINY_SHARE
    out: list[tuple[int, int, tuple[str, ...]]] = []
    group: list[Piece] = []
    held = 0
    carry: int | None = None  # start of a flushed group that held no token

    def flush() -> None:
        nonlocal group, held, carry
        if group:
            begin = group[0].start if carry is None else carry
            if held:
                out.append((begin, group[-1].end, common_path([p.headings for p in group])))
                carry = None
            else:
                carry = begin
        group, held = [], 0

    for piece in parts:
        first, past = bisect.bisect_left(starts, piece.start), bisect.bisect_left(starts, piece.end)
        n = past - first
        if group and (held + n > config.max_tokens or (top and piece.level == top and held >= tiny)):
            flush()
        if n > config.max_tokens:
            flush()
            begin = piece.start if carry is None else carry
            carry = None
            for a, b in _windows(spans, first, past, blocks, config):
                out.append(
                    (begin if a == first else spans[a][0], piece.end if b == past else spans[b][0], piece.headings)
                )
            continue
        group.append(piece)
        held += n
    flush()
    if carry is not None and out:  # trailing text without tokens joins the last chunk
        a, _, path = out[-1]
        out[-1] = (a, parts[-1].end, path)
    return out


def _top_level(parts: Sequence[Piece]) -> int:
    """The level of the document's top-level sections: the shallowest heading level that
    occurs more than once (a single title heading above them all is not one); 0: none."""
    levels = [p.level for p in parts if p.level]
    return min((lvl for lvl in set(levels) if levels.count(lvl) > 1), default=0)


def _windows(
    spans: Sequence[tuple[int, int]], first: int, past: int, blocks: Sequence[tuple[int, int]], config: ChunkingConfig
) -> list[tuple[int, int]]:
    """Token windows ``[a, b)`` over tokens ``first..past``: ``max_tokens`` long, each starting
    ``overlap`` tokens before the last one ended, ended early before a whole block that would
    be cut (and that fits in a window)."""
    out: list[tuple[int, int]] = []
    size = config.max_tokens
    i = first
    while True:
        stop = min(i + size, past)
        cut = _cut_block(blocks, i, stop, past, size)
        if cut is not None:
            stop = cut[0]
        out.append((i, stop))
        if stop >= past:
            return out
        nxt = max(stop - config.overlap, i + 1)
        if cut is not None:  # the next window starts early enough to hold the block whole
            nxt = min(max(nxt, cut[1] - size), cut[0])
        i = nxt


def _cut_block(blocks: Sequence[tuple[int, int]], i: int, stop: int, past: int, size: int) -> tuple[int, int] | None:
    """The whole block a window ``[i, stop)`` would cut (it starts after ``i``, ends after
    ``stop`` and fits in a window), if any."""
    if stop >= past:
        return None
    for bs, be in blocks:
        if i < bs < stop < be and be - bs <= size:
            return (bs, be)
    return None
