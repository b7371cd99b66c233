"""Dense-only retrieval quality of a sentence-transformers model over a collection's chunks.

Used for the manifest's before/after figures on the held-back queries: every stored chunk text
is encoded with the model, queries are ranked by exact cosine (or dot) similarity, a document
scores as its best chunk. No store or other model is involved.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from m3retriever.finetune.pairs import ChunkTexts, TrainingData
from m3retriever.labelled.metrics import score

__all__ = ["encode_chunks", "dense_scores", "heldout_pool"]


def heldout_pool(retriever: Any, data: TrainingData, chunks: ChunkTexts, depth: int) -> ChunkTexts:
    """The documents the held-back queries are measured on: with ``depth`` 0 every document,
    else each query's fused top ``depth`` (no rerank) and every relevant document."""
    if depth == 0 or not data.queries:
        return chunks
    ids = sorted(data.queries)
    keep = {d for q in ids for d, g in data.qrels[q].items() if g > 0}
    for start in range(0, len(ids), 64):
        part = ids[start : start + 64]
        for result in retriever.search_batch([data.queries[q] for q in part], top_k=depth, rerank=False):
            keep.update(h.doc_id for h in result)
    return {d: chunks[d] for d in sorted(keep) if d in chunks}


def encode_chunks(model: Any, chunks: ChunkTexts, batch_size: int = 64) -> tuple[list[str], np.ndarray]:
    """The document id of each chunk and the chunk vectors (L2-normalised), chunks in
    (doc id, chunk index) order."""
    docs = [d for d in sorted(chunks) for _ in chunks[d]]
    texts = [t for d in sorted(chunks) for t in chunks[d]]
    vectors = model.encode_document(
        texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    )
    return docs, np.asarray(vectors, dtype=np.float32)


def dense_scores(
    model: Any,
    data: TrainingData,
    encoded: tuple[list[str], np.ndarray],
    *,
    k: int = 100,
    metrics: tuple[str, ...] = ("ndcg@10", "recall@100"),
) -> Mapping[str, float]:
    """Metrics of the model's dense ranking of ``encoded`` chunks for ``data``'s queries."""
    if not data.queries:
        return {}
    ids = sorted(data.queries)
    q = model.encode_query(
        [data.queries[i] for i in ids], convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    )
    docs, matrix = encoded
    sims = np.asarray(q, dtype=np.float32) @ matrix.T
    run: dict[str, dict[str, float]] = {}
    for row, qid in enumerate(ids):
        best: dict[str, float] = {}
        for j in np.argsort(-sims[row], kind="stable")[: 4 * k]:
            doc = docs[int(j)]
            if doc not in best:
                best[doc] = float(sims[row, j])
            if len(best) >= k:
                break
        run[qid] = best
    return score(data.qrels, run, metrics)
