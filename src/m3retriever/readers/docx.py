"""Word (.docx) files: paragraphs and tables in document order (python-docx, the ``docx``
extra), paragraphs in heading styles (``Title``, ``Heading 1``...) as the structure."""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO, Any, Sequence

from m3retriever._deps import require
from m3retriever.readers.base import ReadDocument, TextBuilder

__all__ = ["read_docx", "docx_document"]

_HEADING_STYLE = re.compile(r"^heading (\d)$", re.IGNORECASE)


def read_docx(path: Path) -> Sequence[ReadDocument]:
    """The text of a .docx file; title from its core properties, else its first heading."""
    return [docx_document(path)]


def docx_document(source: Path | IO[bytes]) -> ReadDocument:
    """:func:`read_docx` of a path or a binary file object."""
    docx = require("docx", package="python-docx", extra="docx", purpose="Reading Word (.docx) files")
    document = docx.Document(source if not isinstance(source, Path) else str(source))
    out = TextBuilder()
    for item in document.iter_inner_content():
        if hasattr(item, "rows"):
            _table(out, item)
        else:
            _paragraph(out, item)
    title = (document.core_properties.title or "").strip() or None
    return out.build(title=title)


def _paragraph(out: TextBuilder, paragraph: Any) -> None:
    text = paragraph.text
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    level = _HEADING_STYLE.match(style)
    if style.lower() == "title":
        out.heading(1, text)
    elif level:
        out.heading(int(level.group(1)) + 1, text)
    else:
        out.block(text)


def _table(out: TextBuilder, table: Any) -> None:
    start = out.length
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if not cells or cells[-1] != text:  # a merged cell is listed once per grid column
                cells.append(text)
        out.block(" | ".join(cells))
    out.span("table", start)
