"""``m3retriever demo``: ingest a real corpus that ships with the project, run a few queries,
print the ranked hits with every stage's score."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from m3retriever.config.profiles import get_profile
from m3retriever.display import format_hits
from m3retriever.errors import InputError
from m3retriever.ingest.globs import FileFilter
from m3retriever.ingest.sources import read_folder
from m3retriever.types import Document

__all__ = ["run_demo", "find_project_docs"]

DEFAULT_QUERIES = (
    "How do I run the test suite?",
    "Which fusion does the hybrid query use and with what k?",
    "What happens when a second process opens the same embedded store?",
    "How do I write a plugin that adds an encoder?",
)


DEMO_LEFT_OUT = ("benchmarks.md",)
"""Files of ``docs/`` the demo does not ingest."""


def find_project_docs() -> list[Path]:
    """The project's ``docs/`` folder and ``README.md``, looked up from the current directory
    and from the installed package (an editable install or a source checkout)."""
    candidates = [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]
    for root in candidates:
        if (root / "docs").is_dir() and (root / "README.md").is_file() and (root / "src" / "m3retriever").is_dir():
            return [root / "docs", root / "README.md"]
    return []


def _corpus(corpus: str | None) -> list[Document]:
    if corpus:
        return list(read_folder(corpus))
    paths = find_project_docs()
    if not paths:
        raise InputError(
            "cannot find the project's docs/ folder; run the demo from a checkout of m3retriever "
            "or pass --corpus FOLDER"
        )
    # benchmarks.md is left out: it quotes the demo's own queries beside their results, so it
    # would answer them with tables about them.
    docs = list(read_folder(paths[0], files=FileFilter.of(exclude=DEMO_LEFT_OUT)))
    readme = paths[1]
    docs.append(Document(readme.read_text(encoding="utf-8"), "README.md", {"file_name": "README.md", "suffix": ".md"}, str(readme)))
    return docs


def run_demo(
    profile: str = "small",
    location: str | None = None,
    corpus: str | None = None,
    queries: Sequence[str] | None = None,
    out: Callable[[str], None] = print,
) -> int:
    """Run the demo; returns an exit status.

    Args:
        profile: Profile to use (``small`` works on any machine with PyPI).
        location: Store directory (default: a fresh temporary directory).
        corpus: Folder of documents (default: the project's docs but :data:`DEMO_LEFT_OUT`, and README).
        queries: Queries to run (default: a few questions about the project).
        out: Where lines are written.
    """
    from m3retriever.config import load_config
    from m3retriever.retriever import Retriever

    p = get_profile(profile)
    out(f"m3retriever demo — profile {p.name!r}: {p.description}")
    if p.name != "bge-m3":
        out(
            "To use the production models instead: m3retriever demo --profile bge-m3 "
            "(downloads BAAI/bge-m3 and BAAI/bge-reranker-v2-m3 from the Hugging Face hub, or set "
            "M3R_DENSE_MODEL=/path/to/bge-m3 and M3R_RERANKER_MODEL=/path/to/bge-reranker-v2-m3)."
        )
    docs = _corpus(corpus)
    tmp = None
    if location is None:
        tmp = tempfile.TemporaryDirectory(prefix="m3r-demo-")
        location = tmp.name
    try:
        cfg = load_config(profile=profile, location=location, collection="demo")
        with Retriever(cfg) as r:
            t0 = time.perf_counter()
            report = r.ingest(docs)
            r.optimize()
            out(
                f"ingested {report.documents} documents into {report.chunks_written} chunks "
                f"({report.skipped} unchanged) in {time.perf_counter() - t0:.1f}s at {location}"
            )
            for q in queries or DEFAULT_QUERIES:
                result = r.search(q, top_k=3)
                t = result.timings_ms
                out("")
                out(
                    f"query: {q}   (encode {t.get('encode', 0):.0f} ms, search {t.get('search', 0):.0f} ms, "
                    f"rerank {t.get('rerank', 0):.0f} ms)"
                )
                out(format_hits(result))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0
