"""Load labelled queries: BEIR datasets (gzipped or not) or a JSONL of
``{"query": ..., "relevant": [doc ids]}``."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from m3retriever.errors import InputError
from m3retriever.ingest.sources import iter_jsonl_objects, open_text

__all__ = ["EvalData", "load_dataset", "load_beir", "load_jsonl_queries", "Qrels", "Queries"]

Queries = dict[str, str]
Qrels = dict[str, dict[str, int]]


@dataclass
class EvalData:
    """Queries and relevance judgements (and where the corpus is, if known).

    Attributes:
        name: Dataset name (the folder or file name).
        queries: ``{query_id: text}`` of the queries that have judgements.
        qrels: ``{query_id: {doc_id: relevance}}`` (relevance > 0 means relevant).
        corpus_path: The BEIR folder to ingest, or ``None`` (the collection is already filled).
        split: The qrels split read.
    """

    name: str
    queries: Queries
    qrels: Qrels
    corpus_path: Path | None = None
    split: str = "test"
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.queries)


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def read_qrels(path: str | Path) -> Qrels:
    """Read a BEIR qrels TSV (``query-id corpus-id score``, header optional; ``.gz`` accepted)."""
    qrels: Qrels = {}
    with open_text(path) as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if not row or not "".join(row).strip():
                continue
            if lineno == 1 and not row[-1].strip().lstrip("-").isdigit():
                continue  # header
            if len(row) < 3:
                raise InputError(f"{path}:{lineno}: expected 'query-id<TAB>corpus-id<TAB>score'")
            try:
                score = int(float(row[2]))
            except ValueError:
                raise InputError(f"{path}:{lineno}: score {row[2]!r} is not a number") from None
            qrels.setdefault(row[0].strip(), {})[row[1].strip()] = score
    return qrels


def read_queries(path: str | Path) -> Queries:
    """Read BEIR ``queries.jsonl`` (``{"_id", "text"}`` per line; ``.gz`` accepted)."""
    out: Queries = {}
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            qid = obj.get("_id", obj.get("id"))
            text = obj.get("text", obj.get("query"))
            if qid is None or not isinstance(text, str):
                raise InputError(f"{path}:{lineno}: a query needs '_id' and 'text'")
            out[str(qid)] = text
    return out


def _limit(queries: Queries, qrels: Qrels, max_queries: int | None) -> tuple[Queries, Qrels]:
    # Keep only queries with at least one relevant document, in a stable (sorted) order.
    ids = [q for q in queries if any(v > 0 for v in qrels.get(q, {}).values())]
    if max_queries is not None:
        ids = ids[: max(0, max_queries)]
    return {q: queries[q] for q in ids}, {q: dict(qrels[q]) for q in ids}


def load_beir(folder: str | Path, split: str = "test", max_queries: int | None = None) -> EvalData:
    """Load a BEIR-layout dataset's queries and ``qrels/<split>.tsv(.gz)``.

    Raises:
        InputError: if a file is missing or malformed (the message names it).
    """
    root = Path(folder)
    qpath = _find(root, "queries.jsonl")
    if qpath is None:
        raise InputError(f"{folder} is not a BEIR dataset: no queries.jsonl(.gz) in it")
    rpath = _find(root / "qrels", f"{split}.tsv")
    if rpath is None:
        available = sorted(p.name.split(".")[0] for p in (root / "qrels").glob("*.tsv*"))
        raise InputError(f"{folder} has no qrels/{split}.tsv(.gz); available splits: {available}")
    queries, qrels = _limit(read_queries(qpath), read_qrels(rpath), max_queries)
    if not queries:
        raise InputError(f"{rpath} judges none of the queries in {qpath}")
    corpus = root if _find(root, "corpus.jsonl") else None
    return EvalData(root.name or str(root), queries, qrels, corpus, split)


def load_jsonl_queries(path: str | Path, max_queries: int | None = None) -> EvalData:
    """Load a JSONL of labelled queries.

    Each line: ``{"query": "...", "relevant": ["doc-1", ...]}`` with optional ``"id"``; or
    ``"relevant": {"doc-1": 2, "doc-7": 1}`` for graded relevance. The documents must already
    be in the collection (ingest them first with ``m3retriever ingest``).
    """
    path = Path(path)
    queries: Queries = {}
    qrels: Qrels = {}
    for where, obj in iter_jsonl_objects(path):
        lineno = int(where.rsplit(":", 1)[1])
        text = obj.get("query", obj.get("text"))
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: needs a non-empty 'query' string")
        rel = obj.get("relevant", obj.get("relevant_ids"))
        if isinstance(rel, (list, tuple)):
            judged = {str(d): 1 for d in rel}
        elif isinstance(rel, Mapping):
            judged = {str(d): int(v) for d, v in rel.items()}
        else:
            raise InputError(f"{where}: 'relevant' must be a list of doc ids (or {{doc id: grade}})")
        if not judged:
            raise InputError(f"{where}: 'relevant' is empty")
        qid = str(obj.get("id", obj.get("_id", f"q{lineno}")))
        if qid in queries:
            raise InputError(f"{where}: duplicate query id {qid!r}")
        queries[qid] = text
        qrels[qid] = judged
    queries, qrels = _limit(queries, qrels, max_queries)
    if not queries:
        raise InputError(f"{path} holds no labelled queries")
    return EvalData(path.stem, queries, qrels, None, "jsonl")


def load_dataset(path: str | Path, split: str = "test", max_queries: int | None = None) -> EvalData:
    """A BEIR folder (``split`` picks the qrels) or a labelled-queries JSONL file."""
    p = Path(path)
    if p.is_dir():
        return load_beir(p, split, max_queries)
    if p.is_file():
        return load_jsonl_queries(p, max_queries)
    raise InputError(f"{path} does not exist; pass a BEIR folder or a JSONL of labelled queries")
