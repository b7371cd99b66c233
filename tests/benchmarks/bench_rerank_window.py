"""What the reranker reads of a long chunk: window strategies against reading 128 and 512 tokens.

For each collection, documents are cut into chunks as ingest cuts them (512 tokens of the
dense encoder's tokenizer, 64 shared), a first stage ranks the chunks (BM25 over the search's
word analyzer: case folded, English stopwords out, Snowball stems), and the top ``--depth``
chunks are reranked by the ``small`` profile's cross-encoder (ms-marco-MiniLM-L-12-v2 int8
ONNX) through :func:`m3retriever.search.reading.read_and_score`, the function the search
calls. Strategies:

* ``first-128``: pairs of 128 tokens reading each chunk's start (the ``small`` profile before);
* ``match-128``: the 128-token pair reads the window holding most of the query's words,
  centred on them (the default); ``match-sentence-128`` begins that window at a sentence start;
* ``maxp2-128`` / ``maxp4-128``: the best of up to 2 / 4 windows spread over the chunk;
* ``first-512``: pairs of 512 tokens (the whole chunk, as the ``bge-m3`` profiles read).

Per strategy: nDCG@10 of the reranker's order alone and of the default interpolation
(``rerank_weight`` 0.3 of the min-max-scaled logit, 0.7 of the first stage's), each with its
difference against ``first-128`` (paired randomisation test, 10,000 permutations) and
win/tie/loss, and the reranker's median ms per query. A chunk's ranking maps to its document
by its best chunk. Collections: SciFact (test), XQuAD-R per language (sentences: every chunk
fits a pair, so every strategy reads the same) and ``xquad-long/<lang>``, built here from
XQuAD-R: each paragraph (the sentences of one ``<lang>-<article>-<paragraph>`` in order) is a
document, and the paragraph holding the answer sentence is the relevant one.

    python tests/benchmarks/bench_rerank_window.py --data ../shared/data \
        --collections scifact xquad-long/en xquad-r/en --out /tmp/rerank-window.md

Logits are cached per (pair length, query, passage) within the run, so a pair two strategies
share is scored once (its time counts for the first strategy only: the ms column is measured
on a separate pass with no cache, on ``--time-queries`` queries).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from m3retriever.encoders.base import EncoderOptions
from m3retriever.encoders.bm25 import BM25Encoder
from m3retriever.evaluation.stats import paired_randomisation
from m3retriever.ingest.chunking import ChunkingConfig, chunk_text
from m3retriever.labelled.metrics import per_query
from m3retriever.rerankers.base import Reranker, RerankerOptions, RerankerSpec, TokenSpans
from m3retriever.rerankers.onnx_cross import OnnxCrossEncoderReranker
from m3retriever.runtime.tokens import load_tokenizer
from m3retriever.runtime.wheels import bge_small_onnx_dir
from m3retriever.search.matching import Matcher, word_spans
from m3retriever.search.reading import read_and_score

STRATEGIES: dict[str, tuple[str, int, int, str]] = {
    # name: (window strategy, pair max length, max windows, where a match window begins)
    "first-128": ("first", 128, 1, "centre"),
    "match-128": ("match", 128, 1, "centre"),
    "match-sentence-128": ("match", 128, 1, "sentence"),
    "maxp2-128": ("maxp", 128, 2, "centre"),
    "maxp4-128": ("maxp", 128, 4, "centre"),
    "first-512": ("first", 512, 1, "centre"),
}
BASE = "first-128"
RERANK_WEIGHT = 0.3


class CachedReranker(Reranker):
    """A reranker whose logits are remembered per (query, passage)."""

    def __init__(self, inner: Reranker) -> None:
        self.inner = inner
        self.cache: dict[tuple[str, str], float] = {}

    @property
    def spec(self) -> RerankerSpec:
        return self.inner.spec

    def token_spans(self, texts: Sequence[str]) -> list[TokenSpans] | None:
        return self.inner.token_spans(texts)

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        todo = [p for p in dict.fromkeys(passages) if (query, p) not in self.cache]
        if todo:
            for p, s in zip(todo, self.inner.score(query, todo)):
                self.cache[(query, p)] = float(s)
        return np.array([self.cache[(query, p)] for p in passages], dtype=np.float32)


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        next(f)
        for line in f:
            q, d, s = line.rstrip("\n").split("\t")
            out[q][d] = int(s)
    return dict(out)


def load(
    data: Path, name: str, split: str = "test"
) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """``(docs, queries, qrels)`` of a collection name (see the module's description), the
    queries of qrels ``split``."""
    if name.startswith("xquad-long/"):
        lang = name.split("/", 1)[1]
        docs, queries, qrels = load(data, f"xquad-r/{lang}", split)
        paragraphs: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for doc_id, text in docs.items():
            head, sentence = doc_id.rsplit("-", 1)
            paragraphs[head].append((int(sentence), text))
        joined = {p: " ".join(t for _, t in sorted(s)) for p, s in paragraphs.items()}
        qrels = {q: {d.rsplit("-", 1)[0]: r for d, r in rel.items()} for q, rel in qrels.items()}
        return joined, queries, qrels
    root = data / name
    docs = {}
    for d in _jsonl(root / "corpus.jsonl.gz"):
        title = str(d.get("title") or "").strip()
        docs[str(d["_id"])] = f"{title}\n\n{d['text']}" if title else str(d["text"])
    qrels = _qrels(root / "qrels" / f"{split}.tsv.gz")
    queries = {str(q["_id"]): str(q["text"]) for q in _jsonl(root / "queries.jsonl.gz") if str(q["_id"]) in qrels}
    return docs, queries, qrels


def chunks_of(docs: dict[str, str]) -> list[tuple[str, str]]:
    """``(doc_id, chunk text)`` as ingest cuts them (bge-small's tokenizer, 512/64)."""
    tokenizer = load_tokenizer(bge_small_onnx_dir() / "tokenizer.json")
    tokenizer.no_truncation()

    def offsets(text: str) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in tokenizer.encode(text, add_special_tokens=False).offsets]

    out = []
    for doc_id, text in docs.items():
        out.extend((doc_id, c.text) for c in chunk_text(doc_id, text, offsets, ChunkingConfig(512, 64)))
    return out


def first_stage(
    chunks: list[tuple[str, str]], queries: dict[str, str], depth: int
) -> dict[str, list[tuple[int, float]]]:
    """Each query's top ``depth`` chunks by BM25 over the search's word analyzer."""
    import bm25s

    analyze = BM25Encoder(EncoderOptions()).analyze_words

    def words(text: str) -> list[str]:
        return [w for w in analyze([text[a:b].casefold() for a, b in word_spans(text)]) if w]

    index = bm25s.BM25()
    index.index([words(t) or ["\x00"] for _, t in chunks], show_progress=False)
    out = {}
    for qid, q in queries.items():
        terms = [w for w in words(q) if w in index.vocab_dict] or ["\x00"]
        ids, scores = index.retrieve([terms], k=min(depth, len(chunks)), show_progress=False)
        out[qid] = [(int(i), float(s)) for i, s in zip(ids[0], scores[0])]
    return out


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return np.ones_like(x) if hi - lo < 1e-12 else (x - lo) / (hi - lo)


def _doc_run(ranked: list[int], chunks: list[tuple[str, str]]) -> dict[str, float]:
    run: dict[str, float] = {}
    for rank, i in enumerate(ranked):
        run.setdefault(chunks[i][0], float(len(ranked) - rank))
    return run


def evaluate(
    name: str,
    data: Path,
    depth: int,
    time_queries: int,
    max_queries: int | None,
    rerankers: dict[int, CachedReranker],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    docs, queries, qrels = load(data, name)
    if max_queries:
        queries = dict(list(queries.items())[:max_queries])
    chunks = chunks_of(docs)
    candidates = first_stage(chunks, queries, depth)
    analyze = BM25Encoder(EncoderOptions()).analyze_words
    spans = rerankers[128].inner.token_spans([t for _, t in chunks]) or []
    budget = max((rerankers[128].passage_budget(q) or 0) for q in queries.values())
    long_chunks = sum(1 for s in spans if len(s) > budget)
    runs: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for label, (strategy, length, windows, anchor) in STRATEGIES.items():
        if not long_chunks and label != BASE:
            # Every chunk fits a 128-token pair: every strategy reads the same pairs.
            runs[label] = runs[BASE]
            continue
        alone, mixed = {}, {}
        reranker = rerankers[length]
        for qid, q in queries.items():
            cand = candidates[qid]
            texts = [chunks[i][1] for i, _ in cand]
            reading = read_and_score(reranker, q, texts, strategy, Matcher(q, analyze), windows, anchor)  # type: ignore[arg-type]
            first = np.array([s for _, s in cand])
            final = RERANK_WEIGHT * _minmax(reading.logits) + (1 - RERANK_WEIGHT) * _minmax(first)
            order = sorted(range(len(cand)), key=lambda j: (-reading.logits[j], j))
            alone[qid] = _doc_run([cand[j][0] for j in order], chunks)
            order = sorted(range(len(cand)), key=lambda j: (-final[j], j))
            mixed[qid] = _doc_run([cand[j][0] for j in order], chunks)
        runs[label] = {"alone": alone, "mixed": mixed}
        log(f"{name} {label} done")
    ms = _time(rerankers, chunks, candidates, queries, time_queries, analyze)
    rows = []
    for kind in ("alone", "mixed"):
        base = per_query(qrels, runs[BASE][kind], "ndcg@10")
        for label in STRATEGIES:
            pq = per_query(qrels, runs[label][kind], "ndcg@10")
            a = [base[q] for q in queries]
            b = [pq[q] for q in queries]
            diff = np.array(b) - np.array(a)
            rows.append(
                {
                    "collection": name,
                    "kind": kind,
                    "strategy": label,
                    "ndcg10": float(np.mean(b)),
                    "diff": float(np.mean(diff)),
                    "p": paired_randomisation(a, b) if label != BASE else 1.0,
                    "wtl": (int((diff > 1e-9).sum()), int((abs(diff) <= 1e-9).sum()), int((diff < -1e-9).sum())),
                    "ms": ms[label],
                    "chunks": len(chunks),
                    "queries": len(queries),
                    "long": long_chunks,
                }
            )
    return rows


def _time(
    rerankers: dict[int, CachedReranker],
    chunks: list[tuple[str, str]],
    candidates: dict[str, list[tuple[int, float]]],
    queries: dict[str, str],
    n: int,
    analyze: Any,
) -> dict[str, float]:
    """Median reranker ms per query of each strategy, without the logit cache."""
    out = {}
    sample = list(queries.items())[:n]
    for label, (strategy, length, windows, anchor) in STRATEGIES.items():
        inner = rerankers[length].inner
        times = []
        for qid, q in sample:
            texts = [chunks[i][1] for i, _ in candidates[qid]]
            t0 = time.perf_counter()
            read_and_score(inner, q, texts, strategy, Matcher(q, analyze), windows, anchor)  # type: ignore[arg-type]
            times.append((time.perf_counter() - t0) * 1000)
        out[label] = statistics.median(times)
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| collection | chunks (longer than a 128-token pair) | strategy | nDCG@10 rerank alone | vs first-128 | p | nDCG@10 default (0.3) | vs first-128 | p | w/t/l (default) | rerank ms/query |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by = defaultdict(dict)
    for r in rows:
        by[(r["collection"], r["strategy"])][r["kind"]] = r
    for (coll, label), kinds in by.items():
        a, m = kinds["alone"], kinds["mixed"]
        w, t, lo = m["wtl"]
        lines.append(
            f"| {coll} | {a['chunks']} ({a['long']}) | {label} | {a['ndcg10']:.4f} | {a['diff']:+.4f} | {a['p']:.3f} | "
            f"{m['ndcg10']:.4f} | {m['diff']:+.4f} | {m['p']:.3f} | {w}/{t}/{lo} | {a['ms']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--collections", nargs="+", default=["scifact", "xquad-long/en", "xquad-r/en"])
    ap.add_argument("--depth", type=int, default=10, help="candidates reranked (the profile's rerank_depth)")
    ap.add_argument("--time-queries", type=int, default=50)
    ap.add_argument("--max-queries", type=int, help="the first N queries only (a quick look)")
    ap.add_argument("--strategies", nargs="+", choices=list(STRATEGIES), help="(default: all)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.strategies:
        for label in list(STRATEGIES):
            if label not in args.strategies and label != BASE:
                del STRATEGIES[label]
    rerankers = {n: CachedReranker(OnnxCrossEncoderReranker(RerankerOptions(max_length=n))) for n in (128, 512)}
    rows: list[dict[str, Any]] = []
    for name in args.collections:
        rows.extend(
            evaluate(
                name,
                args.data,
                args.depth,
                args.time_queries,
                args.max_queries,
                rerankers,
                lambda m: print(m, file=sys.stderr, flush=True),
            )
        )
        print(table(rows), flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    md = table(rows)
    if args.out:
        args.out.write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
