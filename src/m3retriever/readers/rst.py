"""reStructuredText files: parsed by docutils (the ``rst`` extra) with file inclusion and raw
output switched off; section titles as the structure, paragraphs, lists, literal blocks and
table cells as blocks. Unknown directives (Sphinx's) are left out, their content with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from m3retriever._deps import require
from m3retriever.ingest.text_files import read_text_file
from m3retriever.readers.base import ReadDocument, TextBuilder

__all__ = ["read_rst", "rst_document"]

_SETTINGS = {
    "report_level": 5,  # no messages on stderr
    "halt_level": 5,
    "file_insertion_enabled": False,  # no `.. include::` of other files
    "raw_enabled": False,
    "doctitle_xform": False,  # the first title stays a section title
    "warning_stream": False,
}


def read_rst(path: Path) -> Sequence[ReadDocument]:
    """The text of a .rst file."""
    return [rst_document(read_text_file(path))]


def rst_document(source: str) -> ReadDocument:
    """:func:`read_rst` of reStructuredText ``source``."""
    core = require("docutils.core", package="docutils", extra="rst", purpose="Reading reStructuredText files")
    nodes = require("docutils.nodes", package="docutils", extra="rst", purpose="Reading reStructuredText files")
    tree = core.publish_doctree(source, settings_overrides=dict(_SETTINGS))
    out = TextBuilder()
    _walk(out, nodes, tree, 0)
    return out.build()


def _walk(out: TextBuilder, nodes: Any, node: Any, depth: int) -> None:
    for child in node.children:
        if isinstance(child, (nodes.system_message, nodes.comment, nodes.substitution_definition, nodes.target)):
            continue
        if isinstance(child, nodes.section):
            title = child.next_node(nodes.title)
            out.heading(depth + 1, title.astext() if title is not None else "")
            _walk(out, nodes, child, depth + 1)
        elif isinstance(child, nodes.title):
            continue  # read with its section
        elif isinstance(child, nodes.literal_block):
            start, _ = out.block(child.astext())
            out.span("code", start)
        elif isinstance(child, nodes.TextElement):
            out.block(" ".join(child.astext().split()))
        elif isinstance(child, nodes.table):
            start = out.length
            _walk(out, nodes, child, depth)
            out.span("table", start)
        elif isinstance(child, nodes.Element):
            _walk(out, nodes, child, depth)
