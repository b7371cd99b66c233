"""Which library each file reader uses: text fidelity, speed and install size of a few
candidates per format, on real files.

* HTML: the project's docs/*.md rendered to HTML (markdown-it) and wrapped in two realistic
  site templates, one with semantic tags (``<header><nav>``, ``<main>``, ``<aside>``,
  ``<footer>``) and one of ``<div>`` soup (a sidebar of links, a cookie banner, a footer);
  the reference is the rendered Markdown's own text. Real sites' pages too, where the OS has
  them: the Node.js API docs (``/usr/share/doc/nodejs/api``, the reference the text of
  ``#apicontent``), libffi's Texinfo manual (``/usr/share/doc/libffi8/html``, the reference
  the body without its navigation header) and, with ``--mdbook DIR``, an mdBook site (the
  Rust book of a rustup install, the reference the text of ``<main>``). The two templates were
  written alongside the chosen rules; the real sites were not.
* PDF: the docs' paragraphs typeset by reportlab over several pages, with a table; the
  reference is the source text. Plus the speed on any real PDFs given with ``--pdf``.
* DOCX: the docs written by python-docx, headings as heading styles, a table; the reference
  is the source text.

Fidelity: precision, recall and F1 of the extracted words against the reference's words
(multisets, case folded): recall drops for lost text, precision for navigation and
boilerplate let through. Install size: the files of the candidate's distributions and of its
dependencies that ``m3retriever`` itself does not need (from their RECORD files).

Run in an environment holding every candidate (``pip install trafilatura selectolax
beautifulsoup4 readability-lxml justext pypdf pdfplumber python-docx docx2python reportlab
markdown-it-py``):
``python tests/benchmarks/bench_readers.py --mdbook ~/.rustup/toolchains/*/share/doc/rust/html/book``.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import io
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))

WORD = re.compile(r"\w+", re.UNICODE)
BASE = {"pluggy", "numpy", "tqdm", "qdrant-edge-py", "tokenizers", "tomli", "typing-extensions", "charset-normalizer"}
"""What m3retriever installs anyway (left out of the install sizes)."""


def words(text: str) -> collections.Counter[str]:
    return collections.Counter(w.lower() for w in WORD.findall(text))


def fidelity(got: str, want: str) -> tuple[float, float, float]:
    g, w = words(got), words(want)
    common = sum((g & w).values())
    p = common / max(1, sum(g.values()))
    r = common / max(1, sum(w.values()))
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def install_mib(dist: str, seen: set[str] | None = None) -> float:
    """MiB on disk of ``dist`` and of its dependencies outside :data:`BASE` (each once)."""
    seen = set() if seen is None else seen
    key = dist.lower().replace("_", "-")
    if key in seen or key in BASE:
        return 0.0
    seen.add(key)
    try:
        d = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return 0.0
    size = sum((f.size or 0) for f in d.files or ())
    for req in d.requires or ():
        if "extra ==" in req:
            continue
        name = re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0]
        size += install_mib(name, seen) * 2**20
    return size / 2**20


# -- the documents ----------------------------------------------------------------------------
def doc_sources() -> list[tuple[str, str]]:
    return [(p.stem, p.read_text(encoding="utf-8")) for p in sorted((ROOT / "docs").glob("*.md"))]


def md_html(md: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table").render(md)


def html_text(fragment: str) -> str:
    import lxml.html

    return lxml.html.fromstring(f"<div>{fragment}</div>").text_content()


NODE_API = Path("/usr/share/doc/nodejs/api")
TEXINFO = Path("/usr/share/doc/libffi8/html")


def lxml_html():  # noqa: ANN201
    import lxml.html

    return lxml.html


NAV = "".join(
    f'<li><a href="/{n}.html">{n.title()} guide and reference</a></li>'
    for n in (
        "installation",
        "quickstart",
        "configuration",
        "plugins",
        "benchmarks",
        "evaluation",
        "changelog",
        "support",
    )
)


def semantic_page(title: str, body: str) -> str:
    return (
        f"<!DOCTYPE html><html><head><title>{title} - Handbook</title><script>var x=1;</script>"
        "<style>body{margin:0}</style></head><body>"
        f'<header><a href="/">Handbook home</a><nav><ul>{NAV}</ul></nav>'
        '<form role="search"><input name="q" placeholder="Search the handbook"></form></header>'
        f'<aside class="sidebar"><h2>On this site</h2><ul>{NAV}</ul></aside>'
        f"<main><article>{body}</article></main>"
        "<footer><p>Copyright 2026 Example Company. All rights reserved. Privacy policy, terms of "
        'service and cookie settings.</p><nav><a href="/imprint">Imprint</a></nav></footer></body></html>'
    )


def div_page(title: str, body: str) -> str:
    return (
        f"<html><head><title>{title} | Docs</title></head><body>"
        '<div id="cookie-banner">We use cookies to improve your experience. Accept all cookies or '
        "manage your preferences.</div>"
        f'<div class="topbar"><div class="logo">Docs</div><div class="menu"><ul>{NAV}</ul></div></div>'
        f'<div class="wrapper"><div id="sidebar"><ul>{NAV}</ul></div>'
        f'<div class="content"><div class="breadcrumbs"><a href="/">Home</a> / {title}</div>{body}'
        '<div class="share">Share this page on social media: Twitter, Facebook, LinkedIn</div></div></div>'
        '<div id="footer">Copyright 2026 Example Company. Was this page helpful? Yes No</div></body></html>'
    )


def html_cases(mdbook: Path | None) -> list[tuple[str, str, str]]:
    """``(set, html, reference text)``."""
    cases = []
    for name, md in doc_sources():
        body = md_html(md)
        ref = html_text(body)
        cases.append(("docs, semantic tags", semantic_page(name, body), ref))
        cases.append(("docs, div layout", div_page(name, body), ref))
    for path in sorted(NODE_API.glob("*.html"))[:30] if NODE_API.is_dir() else ():
        raw = path.read_text(encoding="utf-8", errors="replace")
        content = lxml_html().fromstring(raw).find(".//*[@id='apicontent']")
        if content is not None:
            cases.append(("Node.js API pages", raw, content.text_content()))
    for path in sorted(TEXINFO.glob("*.html")) if TEXINFO.is_dir() else ():
        raw = path.read_text(encoding="utf-8", errors="replace")
        tree = lxml_html().fromstring(raw)
        for nav in tree.xpath("//div[@class='header']"):
            nav.drop_tree()
        body = tree.find(".//body")
        cases.append(("Texinfo pages (libffi)", raw, body.text_content() if body is not None else ""))
    if mdbook is not None:
        import lxml.html

        for path in sorted(mdbook.glob("ch*.html"))[:40]:
            raw = path.read_text(encoding="utf-8", errors="replace")
            main = lxml.html.fromstring(raw).find(".//main")
            if main is not None:
                cases.append(("mdBook pages", raw, main.text_content()))
    return cases


# -- HTML candidates ------------------------------------------------------------------------------
def h_trafilatura(html: str) -> str:
    import trafilatura

    return trafilatura.extract(html, include_tables=True, include_comments=False, favor_recall=True) or ""


def h_readability(html: str) -> str:
    from readability import Document

    return html_text(Document(html).summary(html_partial=True))


def h_justext(html: str) -> str:
    import justext

    paras = justext.justext(html.encode("utf-8"), justext.get_stoplist("English"))
    return "\n".join(p.text for p in paras if not p.is_boilerplate)


def h_bs4(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer", "aside", "form", "noscript"]):
        tag.decompose()
    main = soup.find("main") or soup.find("article") or soup.body or soup
    return main.get_text("\n")


def h_m3r_reader(html: str) -> str:
    """The rules of :mod:`m3retriever.readers.html` (lxml)."""
    from m3retriever.readers.html import html_document

    return html_document(html).text


def h_selectolax(html: str) -> str:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    for tag in ("script", "style", "nav", "header", "footer", "aside", "form", "noscript"):
        for node in tree.css(tag):
            node.decompose()
    main = tree.css_first("main") or tree.css_first("article") or tree.body
    return main.text(separator="\n") if main is not None else ""


HTML = {
    "trafilatura 2.3.1": (h_trafilatura, "trafilatura"),
    "readability-lxml 0.9": (h_readability, "readability-lxml"),
    "jusText 3.0.2": (h_justext, "justext"),
    "beautifulsoup4 4.15.0 (html.parser) + tag rules": (h_bs4, "beautifulsoup4"),
    "selectolax 1.0.2 + tag rules": (h_selectolax, "selectolax"),
    "lxml 6.1 + m3retriever's rules (chosen)": (h_m3r_reader, "lxml"),
}


# -- PDF ------------------------------------------------------------------------------------------
def paragraphs(md: str) -> list[str]:
    out = []
    for block in re.split(r"\n\s*\n", md):
        text = " ".join(line.strip() for line in block.splitlines())
        text = re.sub(r"[`*_#>|\[\]]", "", text)
        if len(text) > 40 and not text.startswith("-"):
            out.append(text)
    return out


def make_pdf(paras: list[str], table: list[list[str]]) -> bytes:
    from xml.sax.saxutils import escape

    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Table

    buf = io.BytesIO()
    styles = getSampleStyleSheet()
    story: list = [Paragraph(escape(p), styles["BodyText"]) for p in paras]
    story.insert(len(story) // 2, Table(table))
    SimpleDocTemplate(buf, pagesize=A4).build(story)
    return buf.getvalue()


def p_pypdf(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def p_pdfplumber(data: bytes) -> str:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return "\n".join(page.extract_text() or "" for page in pdf.pages)


def p_pdfium(data: bytes) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    return "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))


PDF = {
    "pypdf 7.1.0 (chosen)": (p_pypdf, "pypdf"),
    "pdfplumber 0.11.10": (p_pdfplumber, "pdfplumber"),
    "pypdfium2 (pdfplumber's dependency)": (p_pdfium, "pypdfium2"),
}


# -- DOCX -----------------------------------------------------------------------------------------
def make_docx(name: str, md: str) -> bytes:
    import docx

    d = docx.Document()
    d.add_heading(name, level=1)
    for block in re.split(r"\n\s*\n", md):
        line = block.strip()
        if line.startswith("#"):
            d.add_heading(line.lstrip("#").strip(), level=min(3, len(line) - len(line.lstrip("#")) + 1))
        elif line:
            d.add_paragraph(re.sub(r"[`*_>|\[\]]", "", " ".join(line.split())))
    t = d.add_table(rows=3, cols=3)
    for i, row in enumerate(t.rows):
        for j, cell in enumerate(row.cells):
            cell.text = f"cell {i}-{j} of {name}"
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def docx_reference(name: str, md: str) -> str:
    parts = [name]
    for block in re.split(r"\n\s*\n", md):
        line = block.strip()
        parts.append(
            line.lstrip("#").strip() if line.startswith("#") else re.sub(r"[`*_>|\[\]]", "", " ".join(line.split()))
        )
    parts += [f"cell {i}-{j} of {name}" for i in range(3) for j in range(3)]
    return "\n".join(parts)


def d_python_docx(data: bytes) -> str:
    from m3retriever.readers.docx import docx_document

    return docx_document(io.BytesIO(data)).text


def d_docx2python(data: bytes) -> str:
    from docx2python import docx2python

    with tempfile.NamedTemporaryFile(suffix=".docx") as f:
        f.write(data)
        f.flush()
        with docx2python(f.name) as result:
            return result.text


DOCX = {
    "python-docx 1.2.0 (chosen)": (d_python_docx, "python-docx"),
    "docx2python 3.7.1": (d_docx2python, "docx2python"),
}


# -- running --------------------------------------------------------------------------------------
def measure(name: str, fn: Callable[[object], str], cases: Iterable[tuple[str, object, str]]) -> dict[str, list[float]]:
    scores: dict[str, list[float]] = collections.defaultdict(list)
    for group, data, ref in cases:
        began = time.perf_counter()
        try:
            got = fn(data)
        except Exception as exc:  # a candidate that fails on a file scores 0 on it
            print(f"  {name} failed on a {group} file: {type(exc).__name__}: {exc}", file=sys.stderr)
            got = ""
        ms = (time.perf_counter() - began) * 1000
        p, r, f1 = fidelity(got, ref)
        for key, value in (("p", p), ("r", r), ("f1", f1), ("ms", ms)):
            scores[f"{group}|{key}"].append(value)
    return scores


def table(
    title: str, candidates: dict[str, tuple[Callable[..., str], str]], cases: list[tuple[str, object, str]]
) -> None:
    groups = sorted({c[0] for c in cases}, key=[c[0] for c in cases].index)
    print(f"\n### {title}\n")
    print("| library | " + " | ".join(f"{g}: P / R / F1" for g in groups) + " | ms per file (median) | install MiB |")
    print("|---|" + "---|" * (len(groups) + 2))
    for name, (fn, dist) in candidates.items():
        s = measure(name, fn, cases)
        cells = [
            f"{statistics.mean(s[g + '|p']):.3f} / {statistics.mean(s[g + '|r']):.3f} / {statistics.mean(s[g + '|f1']):.3f}"
            for g in groups
        ]
        ms = statistics.median(v for g in groups for v in s[g + "|ms"])
        print(f"| {name} | " + " | ".join(cells) + f" | {ms:.1f} | {install_mib(dist):.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mdbook", type=Path, help="folder of an mdBook site (the Rust book)")
    ap.add_argument("--pdf", type=Path, nargs="*", default=[], help="real PDFs (speed only)")
    args = ap.parse_args()
    sources = doc_sources()
    print(f"{len(sources)} documents from docs/*.md")
    table("HTML", HTML, html_cases(args.mdbook))
    pdf_cases: list[tuple[str, object, str]] = []
    for name, md in sources:
        paras = paragraphs(md)
        rows = [[f"row {i} {name}", f"value {i * 7}", f"note {i}"] for i in range(5)]
        ref = "\n".join(paras) + "\n" + "\n".join(" ".join(r) for r in rows)
        pdf_cases.append(("docs typeset by reportlab", make_pdf(paras, rows), ref))
    for path in args.pdf:
        data = path.read_bytes()
        pdf_cases.append(("real PDFs (vs pypdf)", data, p_pypdf(data)))
    table("PDF", PDF, pdf_cases)
    docx_cases: list[tuple[str, object, str]] = [
        ("docs written by python-docx", make_docx(n, md), docx_reference(n, md)) for n, md in sources
    ]
    table("DOCX", DOCX, docx_cases)


if __name__ == "__main__":
    main()
