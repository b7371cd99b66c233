"""What a document's structure (:class:`~m3retriever.types.Section`) means to the chunker: the
pieces its text is cut into at headings, the blocks kept whole (code, tables, code cells) and
the pages a span of it lies on."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Sequence

from m3retriever.errors import InputError
from m3retriever.types import Section

__all__ = ["Piece", "pieces", "whole_blocks", "pages_of", "common_path", "check_structure", "WHOLE_KINDS"]

WHOLE_KINDS = ("code", "table")
"""Kinds of span kept in one chunk when they fit in its budget (and notebook code cells)."""


@dataclass(frozen=True)
class Piece:
    """The text from one heading up to the next (or before the first heading).

    Attributes:
        start: Offset of its first character.
        end: Offset just after its last character (the next piece's start).
        headings: The heading path it lies under, ending with its own heading.
        level: The level of the heading it starts with (0: none, the text before the first).
    """

    start: int
    end: int
    headings: tuple[str, ...]
    level: int


def _level(section: Section) -> int:
    try:
        return int(section.label) if section.label else len(section.headings)
    except ValueError:
        return len(section.headings)


def _snap(offset: int, starts: Sequence[int], spans: Sequence[tuple[int, int]]) -> int:
    """``offset``, moved back to the start of the token it falls inside (if any)."""
    k = bisect.bisect_left(starts, offset)
    if k > 0 and spans[k - 1][1] > offset:
        return spans[k - 1][0]
    return offset


def pieces(length: int, structure: Sequence[Section], spans: Sequence[tuple[int, int]]) -> list[Piece]:
    """The text ``[0, length)`` cut at the start of every heading section (moved to the start
    of a token that a heading would cut), in order; one piece when there is no heading."""
    starts = [s for s, _ in spans]
    heads: dict[int, Section] = {}
    for section in structure:
        if section.kind == "section" and 0 < section.end and section.start < length:
            at = _snap(max(0, section.start), starts, spans)
            known = heads.get(at)
            if known is None or len(section.headings) > len(known.headings):
                heads[at] = section  # the innermost heading starting there
    bounds: list[tuple[int, tuple[str, ...], int]] = [] if 0 in heads else [(0, (), 0)]
    bounds += [(at, s.headings, _level(s)) for at, s in sorted(heads.items())]
    out = []
    for i, (at, headings, level) in enumerate(bounds):
        end = bounds[i + 1][0] if i + 1 < len(bounds) else length
        out.append(Piece(at, end, tuple(headings), level))
    return out


def whole_blocks(structure: Sequence[Section], starts: Sequence[int]) -> list[tuple[int, int]]:
    """The token ranges ``[first, past)`` of the spans kept whole when they fit (code blocks,
    tables, notebook code cells), by the tokens whose start lies in them; sorted."""
    out = []
    for s in structure:
        if s.kind in WHOLE_KINDS or (s.kind == "cell" and s.label == "code"):
            first, past = bisect.bisect_left(starts, s.start), bisect.bisect_left(starts, s.end)
            if past - first > 1:
                out.append((first, past))
    return sorted(out)


def pages_of(structure: Sequence[Section], start: int, end: int) -> tuple[int, ...]:
    """The page numbers of the ``"page"`` spans overlapping ``[start, end)``, in order."""
    found = {s.page for s in structure if s.kind == "page" and s.page is not None and s.start < end and s.end > start}
    return tuple(sorted(found))


def common_path(paths: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    """The heading path the ``paths`` share, outermost first."""
    if not paths:
        return ()
    first = paths[0]
    n = len(first)
    for path in paths[1:]:
        n = min(n, len(path))
        while n and path[:n] != first[:n]:
            n -= 1
    return first[:n]


def check_structure(structure: Any, length: int, where: str) -> tuple[Section, ...]:
    """``structure`` as a tuple of sections in text order, each within a text of ``length``.

    Raises:
        InputError: naming the document and the first span that is not a :class:`Section`
            within its text.
    """
    if not structure:
        return ()
    if not isinstance(structure, (list, tuple)):
        raise InputError(f"{where}: structure must be a tuple of Section, got {type(structure).__name__}")
    for i, s in enumerate(structure):
        if not isinstance(s, Section):
            raise InputError(f"{where}: structure[{i}] is a {type(s).__name__}, not a Section")
        if not (isinstance(s.start, int) and isinstance(s.end, int) and 0 <= s.start <= s.end <= length):
            raise InputError(
                f"{where}: structure[{i}] spans {s.start!r}..{s.end!r}, outside the text's "
                f"{length} characters; give sections as offsets into the document's text"
            )
        if not (isinstance(s.headings, tuple) and all(isinstance(h, str) for h in s.headings)):
            raise InputError(f"{where}: structure[{i}].headings must be a tuple of strings")
    return tuple(sorted(structure, key=lambda s: (s.start, -s.end)))
