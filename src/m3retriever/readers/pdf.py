"""PDF files: the text layer page by page (pypdf, the ``pdf`` extra), each page a span of the
text with its number; a page without a text layer (a scanned image) is reported, and a file
with none at all is refused."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from m3retriever._deps import require
from m3retriever.readers.base import ReadDocument, TextBuilder, UnreadableFile

__all__ = ["read_pdf"]

OCR_HINT = "run OCR on it (for example ocrmypdf) to make it searchable"


def read_pdf(path: Path) -> Sequence[ReadDocument]:
    """The text of a PDF's pages; metadata ``pages`` (how many) and ``title`` (its document
    information's, else the first line)."""
    pypdf = require("pypdf", package="pypdf", extra="pdf", purpose="Reading PDF files")
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about odd but readable files
    try:
        return [_read(pypdf, path)]
    except pypdf.errors.PyPdfError as exc:
        raise UnreadableFile(f"not a readable PDF ({type(exc).__name__}: {exc}); re-create or re-download it") from None


def _read(pypdf: Any, path: Path) -> ReadDocument:
    reader = pypdf.PdfReader(str(path))
    if reader.is_encrypted and not reader.decrypt(""):
        raise UnreadableFile("encrypted with a password; decrypt it (for example qpdf --decrypt) to ingest it")
    out = TextBuilder()
    empty: list[int] = []
    for number, page in enumerate(reader.pages, 1):
        text = page.extract_text() or ""
        if not text.strip():
            empty.append(number)
            continue
        start, _ = out.block(text.replace("\r\n", "\n").replace("\r", "\n"))
        out.span("page", start, page=number)
    n = len(reader.pages)
    if len(empty) == n:
        raise UnreadableFile(f"no text layer on any of its {n} pages (a scan?); {OCR_HINT}")
    problems = [f"{_pages(empty)} no text layer (a scanned image?); {OCR_HINT}"] if empty else []
    return out.build(title=_title(reader) or _first_line(out), metadata={"pages": n}, problems=problems)


def _pages(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"page {numbers[0]} has"
    return f"pages {', '.join(map(str, numbers))} have"


def _title(reader: Any) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata is not None else None
    except Exception:  # a damaged information dictionary: no title
        return None
    return " ".join(str(title).split()) or None if title else None


def _first_line(out: TextBuilder) -> str | None:
    doc = out.build()
    for line in doc.text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return None
