"""Jupyter notebooks (.ipynb, JSON: no extra needed): markdown and code cells in order, each
a span labelled with its type, Markdown headings as the structure; outputs are left out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from m3retriever.readers.base import ReadDocument, TextBuilder, UnreadableFile
from m3retriever.readers.text import markdown_blocks

__all__ = ["read_notebook"]


def read_notebook(path: Path) -> Sequence[ReadDocument]:
    """The cells of a notebook (nbformat 4, or 3's worksheets); metadata ``language``."""
    try:
        nb = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableFile(f"not a notebook: not valid JSON ({exc})") from None
    if not isinstance(nb, dict):
        raise UnreadableFile("not a notebook: the JSON is not an object")
    cells = nb.get("cells")
    if cells is None:  # nbformat 3
        cells = [c for ws in nb.get("worksheets") or [] if isinstance(ws, dict) for c in ws.get("cells") or []]
    if not isinstance(cells, list):
        raise UnreadableFile("not a notebook: 'cells' is not a list")
    out = TextBuilder()
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        kind = str(cell.get("cell_type") or "")
        text = _source(cell.get("source", cell.get("input")))
        start = out.length
        if kind == "markdown":
            markdown_blocks(out, text)
        elif kind in ("code", "raw"):
            out.block(text)
        else:
            continue
        out.span("cell", start, label=kind)
    meta: dict[str, Any] = nb["metadata"] if isinstance(nb.get("metadata"), dict) else {}
    language = (meta.get("kernelspec") or {}).get("language") or (meta.get("language_info") or {}).get("name")
    return [out.build(metadata={"language": language} if isinstance(language, str) else {})]


def _source(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else ""
