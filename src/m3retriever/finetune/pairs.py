"""Labelled training pairs for fine-tuning, checked against an ingested collection.

Pairs come from a BEIR dataset's qrels split (``qrels/train.tsv``) or a JSONL of
``{"query": ..., "relevant": [doc ids]}`` (the format ``m3retriever eval`` reads), or from a
registered query generator when a collection has no labels (:func:`generate_pairs`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from m3retriever.errors import InputError, PluginError
from m3retriever.labelled.data import Qrels, Queries, load_dataset

__all__ = ["TrainingData", "ChunkTexts", "load_pairs", "generate_pairs", "split_heldout", "collection_chunks"]

logger = logging.getLogger(__name__)

ChunkTexts = dict[str, list[str]]
"""``{doc_id: [chunk texts in chunk order]}`` of a collection."""


@dataclass(frozen=True)
class TrainingData:
    """Queries with their relevant documents.

    Attributes:
        name: Where the pairs come from (dataset folder, JSONL file or generator).
        split: The qrels split read (``"jsonl"`` for a JSONL file, ``"generated"``).
        queries: ``{query_id: text}``.
        qrels: ``{query_id: {doc_id: grade}}`` (grade > 0 is relevant).
    """

    name: str
    split: str
    queries: Queries
    qrels: Qrels
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        """Number of (query, relevant document) pairs."""
        return sum(1 for q in self.queries for g in self.qrels.get(q, {}).values() if g > 0)

    def qrels_sha256(self) -> str:
        """SHA-256 of the judgements (sorted JSON), to identify the training data."""
        blob = json.dumps(self.qrels, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def subset(self, ids: Iterable[str]) -> "TrainingData":
        """The same data restricted to the queries ``ids``."""
        keep = [q for q in ids if q in self.queries]
        return TrainingData(
            self.name, self.split, {q: self.queries[q] for q in keep}, {q: self.qrels[q] for q in keep}, self.meta
        )


def load_pairs(path: str | Path, split: str = "train") -> TrainingData:
    """Read labelled pairs from a BEIR folder (its ``qrels/<split>``) or a JSONL file.

    Raises:
        InputError: The file or split is missing, malformed, or holds no relevant pair.
    """
    data = load_dataset(path, split=split)
    return TrainingData(data.name, data.split, dict(data.queries), dict(data.qrels))


def collection_chunks(records: Iterable[Any]) -> ChunkTexts:
    """Group stored chunk records (``payload`` with ``doc_id``, ``chunk_index``, ``text``) by
    document, chunks in order."""
    found: dict[str, list[tuple[int, str]]] = {}
    for r in records:
        p = r.payload
        doc, text = p.get("doc_id"), p.get("text")
        if isinstance(doc, str) and isinstance(text, str):
            found.setdefault(doc, []).append((int(p.get("chunk_index", 0) or 0), text))
    return {d: [t for _, t in sorted(chunks)] for d, chunks in found.items()}


def check_against(data: TrainingData, chunks: ChunkTexts, collection: str) -> None:
    """Raise an :class:`InputError` when the pairs name documents the collection lacks.

    Args:
        data: The pairs.
        chunks: The collection's chunk texts by document.
        collection: Its name, for the message.
    """
    if not data.queries or data.n_pairs == 0:
        raise InputError(f"{data.name}: no (query, relevant document) pair to train on")
    missing = sorted({d for q in data.queries for d, g in data.qrels[q].items() if g > 0 and d not in chunks})
    if missing:
        shown = ", ".join(repr(d) for d in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputError(
            f"{len(missing)} relevant document id(s) of {data.name} are not in collection "
            f"{collection!r}: {shown}. Ingest those documents first, or fix the ids in the pairs."
        )


def split_heldout(data: TrainingData, fraction: float, seed: int) -> tuple[TrainingData, TrainingData]:
    """Split the queries into (train, held-back) with a seeded shuffle.

    ``fraction`` of the queries (at least one when there are two or more, none when 0) is held
    back to measure the model before and after training.
    """
    if not 0.0 <= fraction < 1.0:
        raise InputError(f"the held-back fraction must be in [0, 1), got {fraction}")
    ids = sorted(data.queries)
    random.Random(seed).shuffle(ids)
    n = 0 if fraction == 0 or len(ids) < 2 else max(1, round(len(ids) * fraction))
    return data.subset(sorted(ids[n:])), data.subset(sorted(ids[:n]))


QueryGenerator = Callable[[Sequence[tuple[str, str]]], Sequence[tuple[str, str]]]
"""Takes ``(doc_id, chunk text)`` items and returns ``(query, doc_id)`` pairs."""


def generate_pairs(
    name: str, generators: Mapping[str, Callable[..., Any]], chunks: ChunkTexts, *, options: Mapping[str, Any] | None = None
) -> TrainingData:
    """Make training pairs for an unlabelled collection with a registered query generator.

    Args:
        name: The generator's registered name.
        generators: The registered factories (``register_query_generators``).
        chunks: The collection's chunk texts by document.
        options: Keyword arguments for the generator's factory.

    Raises:
        PluginError: No generator ``name`` is registered.
        InputError: The generator returned no pair, or a pair for an unknown document.
    """
    if name not in generators:
        raise PluginError(
            f"no query generator named {name!r}; registered query generators: {sorted(generators)}. "
            "Install the plugin that provides it, or pass labelled pairs instead."
        )
    generator = generators[name](**dict(options or {}))
    items = [(d, t) for d, texts in sorted(chunks.items()) for t in texts]
    queries: Queries = {}
    qrels: Qrels = {}
    for i, pair in enumerate(generator(items)):
        query, doc = pair
        if not isinstance(query, str) or not query.strip() or doc not in chunks:
            raise InputError(
                f"query generator {name!r} returned {pair!r}: each pair must be (a non-empty query, "
                "the id of a document of the collection)"
            )
        queries[f"gen-{i}"] = query
        qrels[f"gen-{i}"] = {str(doc): 1}
    if not queries:
        raise InputError(f"query generator {name!r} returned no pair for {len(items)} chunk(s)")
    logger.info("query generator %s made %d pairs", name, len(queries))
    return TrainingData(f"generator:{name}", "generated", queries, qrels)
