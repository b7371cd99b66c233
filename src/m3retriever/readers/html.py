"""HTML pages: the main content (``<main>``, ``<article>``, else the body) without the site's
navigation, header, footer, sidebars, banners and scripts; headings ``<h1>``-``<h6>`` as
structure, tables row by row. Needs lxml (the ``html`` extra)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from m3retriever._deps import require
from m3retriever.readers.base import ReadDocument, TextBuilder, UnreadableFile

__all__ = ["read_html", "html_document"]

_DROP = frozenset(
    "script style noscript template nav aside footer form button svg iframe select object canvas dialog".split()
)
_CHROME_ROLES = frozenset("navigation banner contentinfo search complementary dialog menu menubar".split())
_CHROME_WORDS = frozenset(
    "nav navbar navigation menu menubar sidebar footer breadcrumb breadcrumbs cookie cookies banner share social "
    "topbar skip masthead toolbar pagination".split()
)
_BLOCKS = frozenset(
    "p div section article main li ul ol dl dt dd blockquote tr table thead tbody tfoot caption figure figcaption "
    "body header address details summary hr br".split()
)
_HEADING = re.compile(r"^h([1-6])$")
_SPACES = re.compile(r"\s+")


def _lxml_html() -> Any:
    return require("lxml.html", package="lxml", extra="html", purpose="Reading HTML files")


def read_html(path: Path) -> Sequence[ReadDocument]:
    """The main content of an HTML file (its encoding from its ``<meta charset>``, else UTF-8)."""
    return [html_document(path.read_bytes())]


def html_document(html: str | bytes) -> ReadDocument:
    """The main content of an HTML page as a document (title: the ``<title>``, else the first
    heading)."""
    lxml_html = _lxml_html()
    if not (html.strip() if isinstance(html, str) else html.strip()):
        raise UnreadableFile("empty file")
    tree = lxml_html.document_fromstring(html)
    title_el = tree.find(".//title")
    title = " ".join(title_el.text_content().split()) if title_el is not None else None
    root = _main(tree)
    _drop_chrome(root, inside_main=root.tag != "body")
    out = _Walker()
    out.walk(root)
    out.flush()
    return out.builder.build(title=title or None)


def _main(tree: Any) -> Any:
    for query in (".//main", ".//*[@role='main']", ".//article"):
        found = tree.find(query) if not query.startswith(".//*") else next(iter(tree.xpath(query)), None)
        if found is not None:
            return found
    body = tree.find(".//body")
    return body if body is not None else tree


def _is_chrome(el: Any, inside_main: bool) -> bool:
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag in _DROP or (tag == "header" and not inside_main):
        return True
    if (
        (el.get("role") or "").lower() in _CHROME_ROLES
        or el.get("aria-hidden") == "true"
        or el.get("hidden") is not None
    ):
        return True
    words = re.split(r"[\s_-]+", f"{el.get('class') or ''} {el.get('id') or ''}".lower())
    return any(w in _CHROME_WORDS for w in words)


def _drop_chrome(root: Any, inside_main: bool) -> None:
    doomed = [el for el in root.iterdescendants() if not isinstance(el.tag, str) or _is_chrome(el, inside_main)]
    for el in doomed:
        if el.getparent() is not None:
            el.drop_tree()  # keeps the element's tail text


class _Walker:
    """Turns the content tree into blocks: inline text gathered into the current block, a
    block element ending it."""

    def __init__(self) -> None:
        self.builder = TextBuilder()
        self._inline: list[str] = []
        self._table_start: int | None = None

    def flush(self) -> None:
        text = _SPACES.sub(" ", "".join(self._inline)).strip()
        self._inline = []
        if text:
            self.builder.block(text)

    def walk(self, el: Any) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        heading = _HEADING.match(tag)
        if heading:
            self.flush()
            self.builder.heading(int(heading.group(1)), el.text_content())
        elif tag == "pre":
            self.flush()
            start, _ = self.builder.block(el.text_content())
            self.builder.span("code", start)  # kept whole by the chunker where it fits
        elif tag == "table":
            self.flush()
            start = self.builder.length
            self._children(el)
            self.flush()
            self.builder.span("table", start)
        elif tag in ("td", "th"):
            if self._inline:
                self._inline.append(" | ")
            self._children(el)
        elif tag in _BLOCKS:
            self.flush()
            self._children(el)
            self.flush()
        else:
            self._children(el)

    def _children(self, el: Any) -> None:
        if el.text:
            self._inline.append(el.text)
        for child in el:
            self.walk(child)
            if child.tail:
                self._inline.append(child.tail)
