"""Contextual chunk headers: does putting a document's title and a chunk's heading path in front
of the text the dense encoder reads help retrieval?

Documents are chunked by the library's chunker (:func:`m3retriever.ingest.chunking.chunk_text`,
with their structure when they have one) and each chunk is encoded by the ``small`` profile's
dense encoder (bge-small-en-v1.5 int8 ONNX) twice: as stored (``off``) and as the encoders read
it with headers on (:func:`m3retriever.ingest.headers.encoder_text`; a text both variants share
is encoded once). Queries are ranked by exact cosine over the chunk vectors, a document by its
best chunk (what a dense-only search returns, without HNSW's approximation), and nDCG@10 is
compared with a paired randomisation test (:func:`m3retriever.evaluation.stats.paired_randomisation`).

Collections:

* ``scifact``: SciFact test (BEIR layout, titles in ``metadata.title`` and in front of the text,
  as a JSONL ingest gives them): mode ``all`` against ``off``.
* ``docs``: the reStructuredText documentation of sdists downloaded from PyPI (``--sdist``
  folders, each holding ``docs/``), read by the library's folder reader (headings as
  structure). Queries are made automatically: up to ``--per-doc`` sentences (10 to 40 words,
  prose: no heading, code or table) drawn per document at random (seeded), each removed from
  the indexed text; the document it came from is the relevant one. Queries are never made from headings. Mode
  ``structured`` against ``off``.

It also counts the chunks the section packing makes with other :data:`TINY_SHARE` values.

    python tests/benchmarks/bench_chunk_headers.py --data ../shared/data \\
        --sdist /tmp/chb/flask-3.0.3 /tmp/chb/werkzeug-3.0.3 --chunk-tokens 512 128
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from m3retriever import Config
from m3retriever.components import encoders_for
from m3retriever.config.resolution import resolve
from m3retriever.evaluation.stats import paired_randomisation
from m3retriever.ingest import chunking
from m3retriever.ingest.chunking import ChunkingConfig, chunk_text
from m3retriever.ingest.headers import chunking_for, encoder_text
from m3retriever.ingest.sources import read_beir_corpus, read_folder
from m3retriever.labelled.data import load_dataset
from m3retriever.labelled.metrics import per_query
from m3retriever.types import Document

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]")


def _encoders() -> Any:
    settings = resolve(Config(profile="small", sparse_encoder="none", bm25=False, reranker="none"))
    return encoders_for(settings)


def _encode(enc: Any, texts: Sequence[str], cache: dict[str, np.ndarray]) -> np.ndarray:
    todo = sorted({t for t in texts if t not in cache})
    for i in range(0, len(todo), 64):
        batch = todo[i : i + 64]
        vecs = enc.encode_document(batch, {}).dense
        for t, v in zip(batch, vecs):
            cache[t] = v / (np.linalg.norm(v) or 1.0)
    return np.stack([cache[t] for t in texts])


def _run(
    enc: Any, docs: Sequence[Document], queries: dict[str, str], mode: str, tokens: int, cache: dict[str, np.ndarray]
) -> tuple[dict[str, dict[str, float]], int, int]:
    offsets = enc.chunking_encoder.token_offsets
    config = ChunkingConfig(tokens, min(64, tokens // 4))
    texts, owners = [], []
    headed = 0
    for doc in docs:
        budget = chunking_for(doc, mode, config, enc.max_length)  # room for the header, as ingest does
        for c in chunk_text(doc.doc_id, doc.text, offsets, budget, doc.structure):
            text = encoder_text(doc, c, mode, offsets)
            headed += text != c.text
            texts.append(text)
            owners.append(doc.doc_id)
    matrix = _encode(enc, texts, cache)
    qids = list(queries)
    qvecs = enc.encode_query([queries[q] for q in qids]).dense
    qvecs = qvecs / np.linalg.norm(qvecs, axis=1, keepdims=True)
    sims = qvecs @ matrix.T
    run: dict[str, dict[str, float]] = {}
    for qi, qid in enumerate(qids):
        best: dict[str, float] = {}
        for j in np.argsort(-sims[qi])[:200]:
            best.setdefault(owners[j], float(sims[qi, j]))
        run[qid] = dict(list(best.items())[:100])
    return run, len(texts), headed


def _scifact(data: Path) -> tuple[list[Document], dict[str, str], dict[str, dict[str, int]]]:
    docs = list(read_beir_corpus(data / "scifact"))
    ds = load_dataset(data / "scifact", split="test")
    return docs, dict(ds.queries), {q: dict(r) for q, r in ds.qrels.items()}


def _remove(doc: Document, a: int, b: int) -> Document:
    """``doc`` without ``text[a:b]``, its structure's offsets moved to match."""

    def move(x: int) -> int:
        return x if x <= a else max(a, x - (b - a))

    structure = tuple(dataclasses.replace(s, start=move(s.start), end=move(s.end)) for s in doc.structure)
    return dataclasses.replace(doc, text=doc.text[:a] + doc.text[b:], structure=structure)


def _prose(doc: Document, a: int, b: int) -> bool:
    """Whether ``[a, b)`` overlaps no code block or table and holds no heading."""
    for s in doc.structure:
        if s.kind in ("code", "table") and s.start < b and s.end > a:
            return False
        if s.kind == "section" and a <= s.start < b:
            return False
    return True


def _docs_collection(
    folders: Sequence[Path], seed: int, per_doc: int
) -> tuple[list[Document], dict[str, str], dict[str, dict[str, int]]]:
    rng = random.Random(seed)
    docs: list[Document] = []
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for folder in folders:
        for doc in read_folder(folder / "docs"):
            doc = dataclasses.replace(doc, doc_id=f"{folder.name}/{doc.doc_id}")
            found = [
                m for m in _SENTENCE.finditer(doc.text)
                if 10 <= len(m.group().split()) <= 40 and _prose(doc, m.start(), m.end())
            ]  # fmt: skip
            picked = rng.sample(found, min(per_doc, len(found)))
            for m in sorted(picked, key=lambda m: -m.start()):  # removed from the end first
                qid = f"q{len(queries)}"
                queries[qid] = " ".join(m.group().split())
                qrels[qid] = {doc.doc_id: 1}
                doc = _remove(doc, m.start(), m.end())
            docs.append(doc)
    return docs, queries, qrels


def _packing(enc: Any, docs: Sequence[Document], tokens: int) -> list[str]:
    """Chunk counts and sizes of the structured documents under other packing rules."""
    offsets = enc.chunking_encoder.token_offsets
    config = ChunkingConfig(tokens, min(64, tokens // 4))
    lines = ["| rule | chunks | median tokens | chunks < 32 tokens |", "|---|---|---|---|"]
    saved = chunking.TINY_SHARE
    rules: list[tuple[str, int | None]] = [("by tokens alone (no structure)", None)]
    rules += [(f"tiny = budget / {s}", s) for s in (10**9, 8, 4, 2, 1)]
    try:
        for name, share in rules:
            sizes = []
            for doc in docs:
                if share is not None:
                    chunking.TINY_SHARE = share
                structure = doc.structure if share is not None else ()
                for c in chunk_text(doc.doc_id, doc.text, offsets, config, structure):
                    sizes.append(len([s for s in offsets(c.text) if s[1] > s[0]]))
            label = "never across a top-level heading" if share == 10**9 else name
            small = sum(n < 32 for n in sizes)
            lines.append(
                f"| {label} | {len(sizes)} | {statistics.median(sizes):.0f} | {small} ({small / len(sizes):.0%}) |"
            )
    finally:
        chunking.TINY_SHARE = saved
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--sdist", type=Path, nargs="*", default=[])
    ap.add_argument("--collections", nargs="+", default=["docs", "scifact"])
    ap.add_argument("--chunk-tokens", type=int, nargs="+", default=[512, 128])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-doc", type=int, default=3, help="queries drawn per document (docs collection)")
    args = ap.parse_args(argv)
    enc = _encoders()
    lines = [
        "| collection | chunk tokens | queries | chunks | with a header | nDCG@10 off | nDCG@10 on | difference | p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in args.collections:
        if name == "scifact":
            docs, queries, qrels = _scifact(args.data)
            mode = "all"
        else:
            docs, queries, qrels = _docs_collection(args.sdist, args.seed, args.per_doc)
            mode = "structured"
            if args.chunk_tokens:
                print("\n".join(_packing(enc, docs, args.chunk_tokens[0])), flush=True)
        cache: dict[str, np.ndarray] = {}
        for tokens in args.chunk_tokens:
            began = time.perf_counter()
            off, n, _ = _run(enc, docs, queries, "off", tokens, cache)
            on, _, headed = _run(enc, docs, queries, mode, tokens, cache)
            a, b = per_query(qrels, off), per_query(qrels, on)
            qids = sorted(qrels)
            x, y = [a.get(q, 0.0) for q in qids], [b.get(q, 0.0) for q in qids]
            p = paired_randomisation(y, x)
            lines.append(
                f"| {name} ({mode}) | {tokens} | {len(qids)} | {n} | {headed} | {np.mean(x):.4f} | {np.mean(y):.4f} "
                f"| {np.mean(y) - np.mean(x):+.4f} | {p:.3f} |"
            )
            print(lines[-1], f"({time.perf_counter() - began:.0f} s)", file=sys.stderr, flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
