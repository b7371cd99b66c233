"""Plain-text output of the command line: one line to stdout (``out``, what every command
prints with) and the table of search results (the CLI's ``search`` and the demo)."""

from __future__ import annotations

import sys

from m3retriever.types import SearchResult

__all__ = ["out", "format_hits"]


def out(text: str = "") -> None:
    """Write ``text`` and a newline to the current ``sys.stdout`` (a command's output, never a log)."""
    sys.stdout.write(text + "\n")


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


TERMS_WIDTH = 24
"""Characters of the ``matched`` column (the query's words found in the hit)."""


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_hits(result: SearchResult, width: int = 60) -> str:
    """A plain-text table of hits with every stage's score (rank in parentheses), the query's
    words found in each (``matched``) and the start of its text."""
    if result.no_confident_match:
        return "no confident match (no hit reached min_score)"
    if not result.hits:
        return "no hits"
    rescored = any(h.scores.multivector is not None for h in result.hits)
    head = (
        "#", "doc_id", "dense", "sparse", "bm25", "fused", *(("colbert",) if rescored else ()),
        "rerank", "conf", "final", "matched", "text",
    )  # fmt: skip
    rows = [head]
    for h in result.hits:
        s = h.scores

        def cell(v: float | None, r: int | None, digits: int = 3) -> str:
            return "-" if v is None else f"{v:.{digits}f}({r})"

        text = " ".join(h.text.split())
        rows.append(
            (
                str(s.final_rank),
                h.doc_id if len(h.doc_id) <= 28 else "…" + h.doc_id[-27:],
                cell(s.dense, s.dense_rank),
                cell(s.sparse, s.sparse_rank, 2),
                cell(s.bm25, s.bm25_rank, 2),
                cell(s.fused, s.fused_rank, 4),
                *((cell(s.multivector, s.multivector_rank),) if rescored else ()),
                cell(s.rerank, s.rerank_rank),
                "-" if s.confidence is None else f"{s.confidence:.2f}",
                _fmt(s.final),
                _clip(",".join(h.matched_terms) or "-", TERMS_WIDTH),
                text if len(text) <= width else text[: width - 1] + "…",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
