"""File readers on real files made by the tools people make them with (reportlab, python-docx,
a notebook's JSON, an HTML page with a site's chrome): the extracted text is the source text,
headings and pages become structure, and what cannot be read is said, never silently empty."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from m3retriever import hookspecs, plugins
from m3retriever.errors import MissingDependencyError
from m3retriever.ingest.folder import FolderTally, read_folder
from m3retriever.readers import get_reader, read_file, reader_suffixes
from m3retriever.readers.base import Section, TextBuilder, UnreadableFile

# -- PDF --------------------------------------------------------------------------------------------
PDF_PAGES = [
    [
        "Hybrid retrieval combines dense and sparse vectors.",
        "Each branch ranks the chunks on its own.",
        "Reciprocal rank fusion merges the rankings.",
    ],
    None,  # the table page
    None,  # a scanned page: a drawing, no text layer
    ["The reranker reads the query and passage together.", "Its logit becomes a calibrated score."],
]
TABLE = [
    ["Stage", "Recall", "Latency"],
    ["dense", "0.71", "12 ms"],
    ["sparse", "0.64", "9 ms"],
    ["fused", "0.78", "15 ms"],
]


def make_pdf(path: Path) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas
    from reportlab.platypus import Table

    c = canvas.Canvas(str(path), pagesize=A4)
    c.setTitle("Retrieval notes")
    for number, lines in enumerate(PDF_PAGES, 1):
        if number == 2:
            table = Table(TABLE)
            table.wrapOn(c, 400, 300)
            table.drawOn(c, 72, 600)
        elif lines is None:
            c.rect(72, 400, 300, 200, fill=1)  # an image-like page without any text
        else:
            y = 780
            for line in lines:
                c.drawString(72, y, line)
                y -= 18
        c.showPage()
    c.save()
    return path


def test_a_pdf_reads_its_pages_with_numbers_and_reports_the_page_without_text(tmp_path: Path):
    (doc,) = read_file(make_pdf(tmp_path / "notes.pdf"))
    pages = [s for s in doc.structure if s.kind == "page"]
    assert [s.page for s in pages] == [1, 2, 4]
    page_text = {s.page: doc.text[s.start : s.end] for s in pages}
    assert page_text[1].splitlines() == PDF_PAGES[0]
    assert page_text[4].splitlines() == PDF_PAGES[3]
    for row in TABLE:  # the table's rows, each cell in order
        assert re.search(r"\s+".join(map(re.escape, row)), page_text[2]), (row, page_text[2])
    assert doc.metadata["pages"] == 4 and doc.title == "Retrieval notes"
    assert doc.problems == (
        "page 3 has no text layer (a scanned image?); run OCR on it (for example ocrmypdf) to make it searchable",
    )


def test_a_pdf_without_any_text_layer_is_refused_and_a_corrupt_one_names_the_problem(tmp_path: Path):
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(tmp_path / "scan.pdf"))
    for _ in range(2):
        c.rect(50, 50, 200, 200, fill=1)
        c.showPage()
    c.save()
    with pytest.raises(UnreadableFile, match="no text layer on any of its 2 pages"):
        read_file(tmp_path / "scan.pdf")
    data = make_pdf(tmp_path / "whole.pdf").read_bytes()
    (tmp_path / "cut.pdf").write_bytes(data[: len(data) // 3])
    (tmp_path / "junk.pdf").write_bytes(b"this is not a PDF at all\n" * 10)
    tally = FolderTally()
    docs = list(read_folder(tmp_path, tally=tally))
    assert [d.doc_id for d in docs] == ["whole.pdf"]
    reasons = dict(entry.rsplit("/", 1)[1].split(": ", 1) for entry in tally.skipped)
    assert reasons["scan.pdf"].startswith("no text layer on any of its 2 pages")
    assert reasons["junk.pdf"].startswith("not a readable PDF (")
    assert reasons["cut.pdf"].startswith("not a readable PDF (")
    assert tally.notes == [
        f"{tmp_path / 'whole.pdf'}: page 3 has no text layer (a scanned image?); run OCR on it "
        "(for example ocrmypdf) to make it searchable"
    ]


# -- HTML -------------------------------------------------------------------------------------------
ARTICLE = [
    ("h1", "Query parameters"),
    ("p", "Every search takes a query and optional parameters that shape the ranking."),
    ("h2", "Optional parameters"),
    ("p", "The top_k parameter sets how many hits come back."),
    ("li", "min_score drops hits below a calibrated score."),
    ("li", "max_per_doc keeps at most a few chunks of one document."),
    ("h3", "Filters"),
    ("p", "A filter restricts the search to documents whose metadata match."),
]
CHROME = [
    "Accept all cookies",
    "Products Pricing Blog",
    "Sidebar link to the changelog",
    "Copyright 2026 Example",
    "Share on social media",
    "var tracking",
]


def page(article: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Query parameters | Example Docs</title>
<script>var tracking = 1;</script><style>.x {{ color: red }}</style></head>
<body>
<div id="cookie-banner">We use cookies. Accept all cookies?</div>
<header class="site-header"><a href="/">Example</a>
  <nav><ul><li><a href="/p">Products Pricing Blog</a></li></ul></nav></header>
<div class="layout">
  <aside class="sidebar"><ul><li><a href="/changelog">Sidebar link to the changelog</a></li></ul></aside>
  <main><article>{article}</article>
  <div class="share-buttons">Share on social media</div></main>
</div>
<footer><p>Copyright 2026 Example Company</p></footer>
</body></html>"""


def article_html() -> str:
    out, items = [], []
    for tag, text in ARTICLE:
        if tag == "li":
            items.append(f"<li>{text}</li>")
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items = []
        out.append(f"<{tag}>{text}</{tag}>")
    out.append("<table><tr><th>Name</th><th>Default</th></tr><tr><td>top_k</td><td>10</td></tr></table>")
    out.append('<pre><code>r.search("rank fusion",\n         top_k=5)</code></pre>')
    return "\n".join(out)


def test_html_keeps_the_main_content_and_drops_the_site_chrome(tmp_path: Path):
    path = tmp_path / "params.html"
    path.write_text(page(article_html()), encoding="utf-8")
    (doc,) = read_file(path)
    blocks = doc.text.split("\n\n")
    assert blocks[: len(ARTICLE)] == [text for _, text in ARTICLE]
    assert blocks[len(ARTICLE) :] == ["Name | Default", "top_k | 10", 'r.search("rank fusion",\n         top_k=5)']
    for chrome in CHROME:
        assert chrome not in doc.text
    assert doc.title == "Query parameters | Example Docs"
    sections = {s.headings: doc.text[s.start : s.end] for s in doc.structure if s.kind == "section"}
    assert sections[("Query parameters", "Optional parameters", "Filters")].startswith("Filters\n\nA filter")
    assert sections[("Query parameters", "Optional parameters")].startswith("Optional parameters\n\nThe top_k")
    table = next(s for s in doc.structure if s.kind == "table")
    assert doc.text[table.start : table.end] == "Name | Default\n\ntop_k | 10"
    code = next(s for s in doc.structure if s.kind == "code")  # a <pre>, kept whole by the chunker
    assert doc.text[code.start : code.end] == 'r.search("rank fusion",\n         top_k=5)'


def test_html_without_main_drops_chrome_by_role_and_class(tmp_path: Path):
    body = (
        "<div role='navigation'>Products Pricing Blog</div><div class='breadcrumbs'>Home / Docs</div>"
        "<div class='content'><h1>Install</h1><p>Run pip install m3retriever.</p></div>"
        "<div id='footer'>Copyright 2026 Example</div>"
    )
    path = tmp_path / "install.htm"
    path.write_bytes(
        f"<html><head><meta charset='latin-1'><title>Install</title></head><body>{body}"
        "<p>Caf\xe9 au lait.</p></body></html>".encode("latin-1")
    )
    (doc,) = read_file(path)
    assert doc.text.split("\n\n") == ["Install", "Run pip install m3retriever.", "Caf\xe9 au lait."]


# -- DOCX -------------------------------------------------------------------------------------------
def make_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.core_properties.title = "Operations handbook"
    d.add_heading("Operations handbook", level=0)  # the Title style
    d.add_heading("Backups", level=1)
    d.add_paragraph("Snapshots are taken every night and kept for a month.")
    d.add_heading("Restoring", level=2)
    d.add_paragraph("Restore a snapshot into a new collection first.")
    table = d.add_table(rows=2, cols=2)
    for r, row in enumerate([["Collection", "Size"], ["docs", "12 GB"]]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    d.add_heading("Monitoring", level=1)
    d.add_paragraph("Watch the search latency and the queue length.")
    d.save(str(path))
    return path


def test_docx_reads_paragraphs_and_tables_in_order_with_heading_styles_as_structure(tmp_path: Path):
    (doc,) = read_file(make_docx(tmp_path / "ops.docx"))
    assert doc.text.split("\n\n") == [
        "Operations handbook",
        "Backups",
        "Snapshots are taken every night and kept for a month.",
        "Restoring",
        "Restore a snapshot into a new collection first.",
        "Collection | Size",
        "docs | 12 GB",
        "Monitoring",
        "Watch the search latency and the queue length.",
    ]
    assert doc.title == "Operations handbook"
    paths = [s.headings for s in doc.structure if s.kind == "section"]
    assert paths == [
        ("Operations handbook",),
        ("Operations handbook", "Backups"),
        ("Operations handbook", "Backups", "Restoring"),
        ("Operations handbook", "Monitoring"),
    ]
    restoring = next(s for s in doc.structure if s.headings[-1:] == ("Restoring",))
    assert doc.text[restoring.start : restoring.end].endswith("docs | 12 GB")


# -- notebooks and reStructuredText ---------------------------------------------------------------------
def make_notebook(path: Path) -> Path:
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Tutorial\n", "\n", "Load the corpus first."]},
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": 1,
                "source": ["from m3retriever import Retriever\n", "r = Retriever()"],
                "outputs": [{"output_type": "stream", "name": "stdout", "text": ["OUTPUT NOT INDEXED\n"]}],
            },
            {"cell_type": "markdown", "metadata": {}, "source": "## Searching\nAsk a question."},
            {"cell_type": "code", "metadata": {}, "execution_count": 2, "source": "r.search('fusion')", "outputs": []},
        ],
    }
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def test_a_notebook_reads_markdown_and_code_cells_without_outputs(tmp_path: Path):
    (doc,) = read_file(make_notebook(tmp_path / "tutorial.ipynb"))
    assert doc.text.split("\n\n") == [
        "Tutorial",
        "Load the corpus first.",
        "from m3retriever import Retriever\nr = Retriever()",
        "Searching",
        "Ask a question.",
        "r.search('fusion')",
    ]
    assert "OUTPUT NOT INDEXED" not in doc.text
    cells = [(s.label, doc.text[s.start : s.end]) for s in doc.structure if s.kind == "cell"]
    assert [label for label, _ in cells] == ["markdown", "code", "markdown", "code"]
    assert cells[1][1] == "from m3retriever import Retriever\nr = Retriever()"
    assert doc.metadata == {"language": "python", "title": "Tutorial"}
    assert [s.headings for s in doc.structure if s.kind == "section"] == [("Tutorial",), ("Tutorial", "Searching")]


RST = """\
Installing
==========

Install the package with pip.

.. include:: /etc/passwd

From source
-----------

* clone the repository
* run the tests

::

    make install

.. autoclass:: m3retriever.Retriever

Done.
"""


def test_rst_reads_sections_lists_and_literal_blocks_and_includes_no_other_file(tmp_path: Path):
    (tmp_path / "install.rst").write_text(RST, encoding="utf-8")
    (doc,) = read_file(tmp_path / "install.rst")
    blocks = doc.text.split("\n\n")
    assert blocks[:6] == [
        "Installing",
        "Install the package with pip.",
        "From source",
        "clone the repository",
        "run the tests",
        "make install",
    ]
    assert blocks[-1] == "Done." and "root:" not in doc.text
    assert [s.headings for s in doc.structure if s.kind == "section"] == [
        ("Installing",),
        ("Installing", "From source"),
    ]


def test_markdown_sections_are_spans_of_the_file_s_own_text(tmp_path: Path):
    text = "# Guide\n\nIntro.\n\n```\n# not a heading\n```\n\n## Setup\n\nSteps.\n"
    (tmp_path / "guide.md").write_text(text)
    (doc,) = read_file(tmp_path / "guide.md")
    assert doc.text == text and doc.metadata == {} and doc.title == "Guide"
    spans = {s.headings: text[s.start : s.end] for s in doc.structure if s.kind == "section"}
    assert spans == {("Guide",): text, ("Guide", "Setup"): "## Setup\n\nSteps.\n"}
    (code,) = [s for s in doc.structure if s.kind == "code"]  # the fenced block, kept whole by the chunker
    assert text[code.start : code.end] == "```\n# not a heading\n```" and code.headings == ("Guide",)


def test_text_builder_sections_nest_and_close_at_their_level():
    out = TextBuilder()
    out.heading(1, "A")
    out.block("one")
    out.heading(2, "B")
    out.block("two")
    out.heading(1, "C")
    out.block("three")
    doc = out.build()
    assert doc.text == "A\n\none\n\nB\n\ntwo\n\nC\n\nthree"
    assert [(s.headings, doc.text[s.start : s.end]) for s in doc.structure] == [
        (("A",), "A\n\none\n\nB\n\ntwo"),
        (("A", "B"), "B\n\ntwo"),
        (("C",), "C\n\nthree"),
    ]
    assert doc.title == "A" and isinstance(doc.structure[0], Section)


# -- the hook -----------------------------------------------------------------------------------------
@pytest.fixture
def fresh_plugins():
    plugins.reset_plugins()
    yield plugins.get_plugin_manager()
    plugins.reset_plugins()


def test_register_readers_builtins_cover_the_formats_and_plugins_lists_them(fresh_plugins):
    assert reader_suffixes() == dict.fromkeys(
        [".docx", ".htm", ".html", ".ipynb", ".markdown", ".md", ".pdf", ".rst", ".txt"], "builtin"
    )
    listed = {p.name: p for p in plugins.list_plugins()}["builtin"].components["register_readers"]
    assert ".pdf" in listed and ".ipynb" in listed


def test_register_readers_from_a_plugin_and_a_missing_library_names_the_extra(fresh_plugins, tmp_path: Path, caplog):
    from m3retriever._deps import require

    class OrgAndXyz:
        @hookspecs.hookimpl
        def register_readers(self, register):
            def read_org(path):
                out = TextBuilder()
                for line in path.read_text().splitlines():
                    if line.startswith("* "):
                        out.heading(1, line[2:])
                    else:
                        out.block(line)
                return [out.build()]

            def xyz():
                require("m3r_no_such_module", package="xyz-parser", extra="xyz", purpose="Reading .xyz files")

            register(".org", lambda: read_org)
            register(".xyz", xyz)

    fresh_plugins.register(OrgAndXyz(), name="orgxyz")
    (tmp_path / "notes.org").write_text("* Plans\nShip the readers.\n")
    (tmp_path / "a.xyz").write_text("data")
    (tmp_path / "b.xyz").write_text("data")
    tally = FolderTally()
    with caplog.at_level(logging.WARNING):
        (doc,) = read_folder(tmp_path, tally=tally)
    assert (doc.doc_id, doc.text, doc.metadata["title"]) == ("notes.org", "Plans\n\nShip the readers.", "Plans")
    assert [c.suffix for c in tally.files()] == [".org", ".xyz"]
    xyz = tally.files()[1]
    assert (xyz.read, xyz.skipped, xyz.reasons) == (0, 2, (("missing library", 2),))
    assert all("pip install 'm3retriever[xyz]'" in entry for entry in tally.skipped)
    with pytest.raises(MissingDependencyError, match=r"m3retriever\[xyz\]"):
        get_reader(".XYZ")
    assert reader_suffixes()[".org"] == "orgxyz"
