"""Hard negatives mined with the retriever itself.

The usual recipe takes negatives from BM25; here they are the retriever's own fused candidates
(every branch, no rerank) that are not judged relevant, which are harder: they are exactly
what the model has to learn to rank below the relevant documents.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

from m3retriever.finetune.pairs import ChunkTexts, TrainingData

__all__ = ["Example", "mine_examples"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    """One training example: a query, a relevant passage and hard negative passages.

    Attributes:
        query_id: The query's id.
        query: The query text.
        positive_doc: The relevant document.
        positive: Its passage (the chunk the retriever ranks best for the query, else chunk 0).
        negative_docs: The documents the negatives come from (never relevant to the query).
        negatives: One passage per negative document, in the retriever's fused order.
    """

    query_id: str
    query: str
    positive_doc: str
    positive: str
    negative_docs: tuple[str, ...]
    negatives: tuple[str, ...]


def mine_examples(
    retriever: Any,
    data: TrainingData,
    chunks: ChunkTexts,
    *,
    negatives: int = 1,
    depth: int = 30,
    skip: int = 0,
    batch: int = 64,
) -> list[Example]:
    """One example per (query, relevant document) pair, with hard negatives.

    Args:
        retriever: An open :class:`~m3retriever.Retriever` over the collection.
        data: The labelled pairs (checked against the collection).
        chunks: The collection's chunk texts by document.
        negatives: Negatives per example (0: in-batch negatives only).
        depth: Fused candidates read per query.
        skip: Non-relevant candidates to pass over at the top (unlabelled relevant documents
            tend to sit there).
        batch: Queries searched per call.

    Returns:
        The examples, in query-id order. A query whose candidates hold fewer than
        ``skip + negatives`` non-relevant documents gets the ones there are.
    """
    ids = sorted(data.queries)
    examples: list[Example] = []
    for start in range(0, len(ids), batch):
        part = ids[start : start + batch]
        results = retriever.search_batch(
            [data.queries[q] for q in part], top_k=depth, rerank=False, prefetch_limit=max(depth, 100)
        )
        for qid, result in zip(part, results):
            examples.extend(_examples(qid, data, chunks, list(result), negatives, skip))
    logger.info("mined %d examples from %d queries", len(examples), len(ids))
    return examples


def _examples(
    qid: str, data: TrainingData, chunks: ChunkTexts, hits: Sequence[Any], negatives: int, skip: int
) -> list[Example]:
    relevant = {d for d, g in data.qrels[qid].items() if g > 0}
    best: dict[str, str] = {}  # doc -> its best-ranked chunk text
    for h in hits:
        best.setdefault(h.doc_id, h.text)
    others = [d for d in best if d not in relevant][skip : skip + negatives]
    return [
        Example(
            qid,
            data.queries[qid],
            doc,
            best.get(doc) or chunks[doc][0],
            tuple(others),
            tuple(best[d] for d in others),
        )
        for doc in sorted(relevant)
    ]
