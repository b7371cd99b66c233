"""What a successful tool call shows a client that reads only text: the pipeline in words and
the hits with their scores."""

from __future__ import annotations

import json

from m3retriever import Retriever, SearchResult

__all__ = ["describe_pipeline", "summarize"]


def describe_pipeline(retriever: Retriever) -> str:
    enc = retriever.encoders
    branches = []
    if enc.dense is not None:
        branches.append("dense (semantic)")
    if enc.sparse is not None:
        branches.append("learned sparse (lexical)")
    if enc.bm25 is not None:
        branches.append("BM25 (keyword)")
    text = "Hybrid search: " + " + ".join(branches or ["no"]) + " retrieval fused by rank"
    if retriever.settings.search.multivector_rescore:
        text += ", rescored by late-interaction (ColBERT) MaxSim"
    if retriever.reranker is not None:
        text += ", then reranked by a cross-encoder"
    return text + "."


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def summarize(result: SearchResult, min_score: float | None) -> str:
    """A readable rendering of the results for clients that read only text content."""
    if result.no_confident_match:
        return (
            f'No confident match for "{result.query}": no passage reached '
            f"min_score={min_score}. Try rephrasing the query or lowering min_score."
        )
    if not result.hits:
        return f'No results for "{result.query}".'
    lines = [f'{len(result.hits)} result(s) for "{result.query}":']
    for hit in result.hits:
        s = hit.scores
        head = f"\n[{s.final_rank}] doc_id={hit.doc_id} chunk={hit.chunk_index}"
        if s.confidence is not None:
            head += f" confidence={s.confidence:.2f}"
        head += f" score={_fmt(s.final)}"
        if s.rerank is not None:
            head += f" rerank={_fmt(s.rerank)}"
        if s.multivector is not None:
            head += f" multivector={_fmt(s.multivector)}"
        if s.fused is not None:
            head += f" fused={_fmt(s.fused)}"
        if hit.source:
            head += f" source={hit.source}"
        lines.append(head)
        if hit.metadata:
            lines.append("metadata: " + json.dumps(dict(hit.metadata), ensure_ascii=False, default=str))
        if hit.matched_terms:
            lines.append("matched terms: " + ", ".join(hit.matched_terms))
        lines.append(hit.text)
    return "\n".join(lines)

