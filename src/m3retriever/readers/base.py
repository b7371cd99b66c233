"""What a file reader returns: documents with their text, title, metadata and structure (the
sections under their headings, the pages of a PDF, the cells of a notebook), and the
:class:`TextBuilder` the built-in readers assemble them with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from m3retriever.types import Section

__all__ = ["Section", "ReadDocument", "Reader", "ReaderFactory", "TextBuilder", "UnreadableFile"]


@dataclass(frozen=True)
class ReadDocument:
    """One document read from a file.

    Attributes:
        text: Its plain text: blocks (paragraphs, headings, list items, table rows, code)
            separated by blank lines.
        title: Its title (the ``<title>``, the document properties, the first heading), if any.
        metadata: JSON values kept with it (a folder ingest adds ``file_name`` and ``suffix``).
        structure: Its sections, pages and cells, in text order (a section holds the
            sections of its subheadings' spans too).
        problems: What the reader could not read but the rest of the document did not depend
            on (``"page 3 has no text layer"``); a folder ingest reports them.
    """

    text: str
    title: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    structure: tuple[Section, ...] = ()
    problems: tuple[str, ...] = ()


class UnreadableFile(ValueError):
    """Raised by a reader for a file it cannot read; the message is the reason a folder ingest
    reports as it is (``"encrypted with a password; decrypt it ..."``). Any other exception is
    reported as ``cannot be read (<type>: <message>)``."""


class Reader(Protocol):
    """Reads one file into documents (usually one).

    Raises an exception naming the problem when the file cannot be read (a corrupt or
    encrypted file): a folder ingest skips the file and reports the message as the reason.
    """

    def __call__(self, path: Path) -> Sequence[ReadDocument]: ...


class ReaderFactory(Protocol):
    """Builds a :class:`Reader`; imports the reader's libraries (raising
    :class:`~m3retriever.errors.MissingDependencyError` naming the pip extra when one is
    missing)."""

    def __call__(self) -> Reader: ...


class TextBuilder:
    """Assembles a document's text block by block, recording its heading sections and any
    other spans (pages, cells, tables) as it goes."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._headings: list[tuple[int, str]] = []  # the open heading path: (level, title)
        self._open: list[tuple[int, int, tuple[str, ...]]] = []  # (level, start, path) of open sections
        self._sections: list[Section] = []
        self.first_heading: str | None = None

    @property
    def length(self) -> int:
        """The length of the text so far (where the next block starts, after its separator)."""
        return self._length + (2 if self._parts else 0)

    @property
    def headings(self) -> tuple[str, ...]:
        """The heading path the next block lies under."""
        return tuple(title for _, title in self._headings)

    def block(self, text: str) -> tuple[int, int]:
        """Add a block (blank ones are dropped); returns its span."""
        text = text.strip("\n")
        if not text.strip():
            return (self.length, self.length)
        if self._parts:
            self._parts.append("\n\n")
            self._length += 2
        start = self._length
        self._parts.append(text)
        self._length += len(text)
        return (start, self._length)

    def heading(self, level: int, title: str) -> None:
        """Start a section under heading ``title`` at ``level`` (1 outermost); closes the
        open sections at that level and deeper."""
        title = " ".join(title.split())
        if not title:
            return
        self._close(level)
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        self._headings.append((level, title))
        start, _ = self.block(title)
        self._open.append((level, start, self.headings))
        self.first_heading = self.first_heading or title

    def span(self, kind: str, start: int, *, page: int | None = None, label: str | None = None) -> None:
        """Record a span of ``kind`` from ``start`` to the end of the text so far."""
        if self._length > start:
            self._sections.append(Section(kind, start, self._length, self.headings, page, label))

    def _close(self, level: int) -> None:
        while self._open and self._open[-1][0] >= level:
            lvl, start, path = self._open.pop()
            self._sections.append(Section("section", start, self._length, path, label=str(lvl)))

    def build(
        self, *, title: str | None = None, metadata: Mapping[str, Any] | None = None, problems: Sequence[str] = ()
    ) -> ReadDocument:
        """The document: ``title`` (else the first heading) and its sections in text order."""
        self._close(0)
        sections = sorted(self._sections, key=lambda s: (s.start, -s.end))
        title = title or self.first_heading
        meta = dict(metadata or {})
        if title:
            meta.setdefault("title", title)
        return ReadDocument("".join(self._parts), title, meta, tuple(sections), tuple(problems))
