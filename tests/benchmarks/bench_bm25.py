"""BM25-only retrieval against bm25s, the reference implementation, and the cost of drift.

    python tests/benchmarks/bench_bm25.py --out /tmp/m3r/bm25.md
    python tests/benchmarks/bench_bm25.py --src /path/to/older/checkout/src   # another version
    python tests/benchmarks/bench_bm25.py --drift --datasets scifact          # drift only

Ours: a retriever with only the BM25 branch (``dense_encoder="none"``, ``sparse_encoder="none"``,
``bm25=True``, ``reranker="none"``), documents not chunked (``chunk_tokens`` above the longest
document, as bm25s indexes whole documents), top 100 per query from the engine. bm25s 0.3.16 with
the same k1 = 1.2, b = 0.75 and Lucene IDF, fed the tokens of our own analyzer (so only the
scoring differs), and once more with its own tokenizer (English stopwords, Snowball stemmer) for
reference. Scored the BEIR way: a retrieved document whose id equals the query id is dropped.

``--drift`` ingests SciFact in 10 batches, shortest documents first (the worst order for a
running average: the first chunks are normalised by a far smaller average than the last), and
in 10 batches in a random order, and compares both with the same store after ``renormalize``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from m3retriever.store.kept import length_stats

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = ROOT.parent / "shared" / "data"
DATASETS = {"scifact": DATA / "scifact", "xquad-r-en": DATA / "xquad-r" / "en"}
K1, B, DEPTH = 1.2, 0.75, 100


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load(folder: Path) -> tuple[list[tuple[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    """Corpus ``[(id, title + newline + text)]`` (as ``read_beir_corpus`` joins them), test
    queries and qrels."""
    corpus = []
    with gzip.open(folder / "corpus.jsonl.gz", "rt") as fh:
        for line in fh:
            obj = json.loads(line)
            title, text = (obj.get("title") or "").strip(), obj["text"]
            corpus.append((str(obj["_id"]), f"{title}\n{text}" if title else text))
    qrels: dict[str, dict[str, int]] = {}
    with gzip.open(folder / "qrels" / "test.tsv.gz", "rt") as fh:
        for row in fh.read().splitlines()[1:]:
            q, d, s = row.split("\t")
            if int(s) > 0:
                qrels.setdefault(q, {})[d] = int(s)
    with gzip.open(folder / "queries.jsonl.gz", "rt") as fh:
        queries = {str(o["_id"]): o["text"] for o in map(json.loads, fh) if str(o["_id"]) in qrels}
    return corpus, queries, qrels


def drop_self(run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """BEIR's rule: a retrieved document whose id equals the query id is not scored."""
    return {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}


def metrics(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    from m3retriever.labelled.metrics import score

    return score(qrels, drop_self(run), ["ndcg@10", "recall@100"])


def open_ours(store: Path) -> Any:
    from m3retriever import Retriever, load_config

    cfg = load_config(
        env={}, location=str(store), collection="bm25", profile="small", dense_encoder="none",
        sparse_encoder="none", bm25=True, reranker="none", chunk_tokens=1_000_000,
    )  # fmt: skip
    return Retriever(cfg)


def search_ours(r: Any, queries: dict[str, str]) -> dict[str, dict[str, float]]:
    qids = list(queries)
    run: dict[str, dict[str, float]] = {}
    for start in range(0, len(qids), 64):
        batch = qids[start : start + 64]
        results = r.search_batch([queries[q] for q in batch], top_k=DEPTH, prefetch_limit=DEPTH,
                                 rerank=False, stage_scores=False)  # fmt: skip
        for q, res in zip(batch, results):
            run[q] = {}
            for h in res.hits:
                run[q].setdefault(h.doc_id, float(h.scores.final))
    return run


def ours(name: str, corpus: list[tuple[str, str]], queries: dict[str, str], store: Path) -> dict[str, Any]:
    shutil.rmtree(store, ignore_errors=True)
    with open_ours(store) as r:
        t0 = time.perf_counter()
        r.ingest([{"doc_id": d, "text": t} for d, t in corpus])
        ingest_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        run = search_ours(r, queries)
        return {"run": run, "ingest_s": ingest_s, "search_s": time.perf_counter() - t0}


def bm25s_run(corpus_tokens: list[list[str]], ids: list[str], query_tokens: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    import bm25s
    import numpy as np

    model = bm25s.BM25(k1=K1, b=B, method="lucene")
    model.index(corpus_tokens, show_progress=False)
    run: dict[str, dict[str, float]] = {}
    for q, tokens in query_tokens.items():
        known = [t for t in tokens if t in model.vocab_dict]  # repeated tokens count each time
        if not known:
            run[q] = {}
            continue
        scores = model.get_scores(known)
        top = np.argsort(-scores, kind="stable")[:DEPTH]
        run[q] = {ids[i]: float(scores[i]) for i in top if scores[i] > 0}
    return run


def references(corpus: list[tuple[str, str]], queries: dict[str, str]) -> dict[str, dict[str, dict[str, float]]]:
    """bm25s on our analyzer's tokens, and bm25s with its own tokenizer."""
    import bm25s
    import Stemmer

    from m3retriever.encoders.bm25 import BM25Encoder

    analyzer = BM25Encoder()
    ids = [d for d, _ in corpus]
    same = bm25s_run([analyzer.analyze(t) for _, t in corpus], ids, {q: analyzer.analyze(t) for q, t in queries.items()})
    stemmer = Stemmer.Stemmer("english")

    def tok(texts: list[str]) -> list[list[str]]:
        out: list[list[str]] = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
        return out

    own = bm25s_run(tok([t for _, t in corpus]), ids, dict(zip(queries, tok(list(queries.values())))))
    return {"bm25s (our analyzer)": same, "bm25s (its tokenizer)": own}


def compare(datasets: list[str], work: Path) -> list[dict[str, Any]]:
    rows = []
    for name in datasets:
        corpus, queries, qrels = load(DATASETS[name])
        log(f"{name}: {len(corpus)} documents, {len(queries)} queries")
        mine = ours(name, corpus, queries, work / name)
        row: dict[str, Any] = {"dataset": name, "queries": len(queries), "ours": metrics(qrels, mine["run"]),
                               "ingest_s": mine["ingest_s"], "search_s": mine["search_s"]}  # fmt: skip
        for label, run in references(corpus, queries).items():
            row[label] = metrics(qrels, run)
        rows.append(row)
        log(json.dumps(row))
    return rows


def drift(work: Path, batches: int = 10) -> list[dict[str, Any]]:
    """SciFact ingested in ``batches`` calls (shortest first; random order) vs renormalised."""
    from m3retriever import renormalize
    from m3retriever.encoders.bm25 import BM25Encoder

    corpus, queries, qrels = load(DATASETS["scifact"])
    lengths = dict(zip([d for d, _ in corpus], BM25Encoder().document_lengths([t for _, t in corpus])))
    orders = {
        "shortest first": sorted(corpus, key=lambda dt: (lengths[dt[0]], dt[0])),
        "random order": random.Random(0).sample(corpus, len(corpus)),
    }
    rows = []
    for label, docs in orders.items():
        store = work / f"drift-{label.replace(' ', '-')}"
        shutil.rmtree(store, ignore_errors=True)
        size = -(-len(docs) // batches)
        averages = []
        with open_ours(store) as r:
            for start in range(0, len(docs), size):
                part = docs[start : start + size]
                r.ingest([{"doc_id": d, "text": t} for d, t in part])
                averages.append(length_stats(r.store, r.collection)["bm25"].average)
            running = metrics(qrels, search_ours(r, queries))
            report = renormalize(r.opened)
            exact = metrics(qrels, search_ours(r, queries))
        first_avg = sum(lengths[d] for d, _ in docs[:size]) / size
        rows.append({"order": label, "batches": batches, "first_batch_avg": first_avg, "final_avg": averages[-1],
                     "running": running, "renormalized": exact, "renormalize_s": report.seconds})  # fmt: skip
        log(json.dumps(rows[-1]))
    return rows


def markdown(rows: list[dict[str, Any]], drift_rows: list[dict[str, Any]], command: str) -> str:
    out = [f"Reproduce: `{command}`", ""]
    if rows:
        out += [
            "| dataset | queries | ours nDCG@10 | bm25s, our analyzer | diff | bm25s, its tokenizer | ours R@100 | bm25s R@100 (our analyzer) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            a, b, c = r["ours"], r["bm25s (our analyzer)"], r["bm25s (its tokenizer)"]
            out.append(f"| {r['dataset']} | {r['queries']} | {a['ndcg@10']:.4f} | {b['ndcg@10']:.4f} | "
                       f"{a['ndcg@10'] - b['ndcg@10']:+.4f} | {c['ndcg@10']:.4f} | {a['recall@100']:.4f} | "
                       f"{b['recall@100']:.4f} |")  # fmt: skip
    if drift_rows:
        out += ["", "| ingest order (SciFact, 10 calls) | first batch avg | final avg | nDCG@10 as ingested | after renormalize | diff |",
                "|---|---|---|---|---|---|"]  # fmt: skip
        for r in drift_rows:
            a, b = r["running"]["ndcg@10"], r["renormalized"]["ndcg@10"]
            out.append(f"| {r['order']} | {r['first_batch_avg']:.1f} | {r['final_avg']:.1f} | {a:.4f} | {b:.4f} | {a - b:+.4f} |")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="scifact,xquad-r-en", help="comma-separated: " + ", ".join(DATASETS))
    parser.add_argument("--work", default="/tmp/m3r/bench-bm25", help="scratch directory for the stores")
    parser.add_argument("--src", default=str(ROOT / "src"), help="import m3retriever from this source folder")
    parser.add_argument("--drift", action="store_true", help="measure the drift of the running average only")
    parser.add_argument("--out", help="write the markdown tables here")
    parser.add_argument("--json", help="write the raw numbers here")
    args = parser.parse_args()
    sys.path.insert(0, args.src)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    rows = [] if args.drift else compare(names, work)
    drift_rows = drift(work) if args.drift else []
    command = "python tests/benchmarks/bench_bm25.py " + " ".join(sys.argv[1:])
    text = markdown(rows, drift_rows, command.strip())
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"compare": rows, "drift": drift_rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
