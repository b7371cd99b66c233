"""Plain text and Markdown files (UTF-8): the whole file as its text, Markdown's ATX headings
(``# Title``, outside fenced code) as the structure. No extra needed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from m3retriever.ingest.text_files import read_text_file
from m3retriever.readers.base import ReadDocument, Section, TextBuilder

__all__ = ["read_text", "read_markdown", "markdown_blocks", "markdown_sections"]

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def read_text(path: Path) -> Sequence[ReadDocument]:
    """The file's text as it is (no title, no structure)."""
    return [ReadDocument(read_text_file(path))]


def read_markdown(path: Path) -> Sequence[ReadDocument]:
    """The file's text as it is, its headings as sections (metadata: none, so that the
    documents of a folder ingested before readers existed stay unchanged)."""
    text = read_text_file(path)
    sections = markdown_sections(text)
    title = next((s.headings[-1] for s in sections if s.kind == "section"), None)
    return [ReadDocument(text, title, {}, sections)]


def markdown_sections(text: str) -> tuple[Section, ...]:
    """The heading sections and fenced code blocks of Markdown ``text`` (spans of ``text``
    itself)."""
    opened: list[tuple[int, int, tuple[str, ...]]] = []
    path: list[tuple[int, str]] = []
    sections: list[Section] = []
    offset = 0
    fenced: int | None = None  # where the open fence started
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            if fenced is None:
                fenced = offset
            else:
                end = offset + len(line.rstrip("\n"))
                sections.append(Section("code", fenced, end, tuple(name for _, name in path)))
                fenced = None
        match = None if fenced is not None else _ATX.match(line.rstrip("\n"))
        if match:
            level = len(match.group(1))
            while opened and opened[-1][0] >= level:
                lvl, start, names = opened.pop()
                sections.append(Section("section", start, offset, names, label=str(lvl)))
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, match.group(2).strip()))
            opened.append((level, offset, tuple(name for _, name in path)))
        offset += len(line)
    for lvl, start, names in opened:
        sections.append(Section("section", start, len(text), names, label=str(lvl)))
    return tuple(sorted(sections, key=lambda s: (s.start, -s.end)))


def markdown_blocks(out: TextBuilder, text: str) -> None:
    """Add Markdown ``text`` to ``out``: headings as headings, the rest in blocks between them."""
    block: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        match = None if fenced else _ATX.match(line)
        if match:
            out.block("\n".join(block))
            block = []
            out.heading(len(match.group(1)), match.group(2))
        else:
            block.append(line)
    out.block("\n".join(block))
