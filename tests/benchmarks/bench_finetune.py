"""Fine-tune all-MiniLM-L6-v2 on SciFact train and evaluate it on SciFact test.

    python tests/benchmarks/bench_finetune.py --stage train --store S --model M --log L
    python tests/benchmarks/bench_finetune.py --stage eval  --store S --model M --out F

``train``: hard negatives from the small pipeline's fused candidates over the SciFact
collection at ``--store`` (ingested with the ``small`` profile), 10% of the train queries held
back for the manifest, then ``m3retriever.finetune`` writes the model to ``--model``.
``eval``: on SciFact test, the model alone (dense only), the small pipeline with the model as
its dense branch, and the small pipeline with the model as an extra ``dense2`` branch (its
weight picked on the held-back train queries); the untrained model as ``dense2`` for
comparison. The store is copied before ``dense2`` is added, so ``--store`` stays as it was.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "scifact"  # as bench_pipeline


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def load() -> float:
    return os.getloadavg()[0]


def train(args: argparse.Namespace) -> dict[str, Any]:
    from m3retriever import Retriever, load_config
    from m3retriever.finetune import Recipe, finetune

    config = load_config(env={}, profile="small", location=args.store, collection=args.collection)
    changes = {k: getattr(args, k) for k in ("epochs", "lr", "batch_size", "skip", "negatives", "loss", "heldout_pool") if getattr(args, k) is not None}
    recipe = Recipe(**changes)  # the defaults are the recipe measured here
    loads = [load()]
    t = time.perf_counter()
    with Retriever(config) as r:
        report = finetune(r, args.model, pairs=args.scifact, split="train", recipe=recipe, overwrite=True)
    wall = time.perf_counter() - t
    loads.append(load())
    out = {"wall_s": wall, "load_start": loads[0], "load_end": loads[1], "manifest": dict(report.manifest)}
    log(f"[train] {json.dumps(out)}")
    return out


def baseline(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The small pipeline as it is, on SciFact test (written to ``--baseline-json``)."""
    from m3retriever import Retriever, load_config
    from m3retriever.evaluation.runner import evaluate
    from m3retriever.labelled.data import load_beir

    test = load_beir(args.scifact, "test")
    t = time.perf_counter()
    with Retriever(load_config(env={}, profile="small", location=args.store, collection=args.collection)) as r:
        scores = evaluate(r, test.queries, test.qrels, stages=["fused", "rerank"]).scores
    log(f"[baseline] small pipeline {scores} in {time.perf_counter() - t:.0f}s")
    if args.baseline_json:
        Path(args.baseline_json).write_text(json.dumps(scores))
    return scores


def evaluate_all(args: argparse.Namespace, command: str) -> str:
    from m3retriever import Retriever, load_config, open_collection
    from m3retriever.finetune import read_manifest
    from m3retriever.finetune.pairs import TrainingData, split_heldout
    from m3retriever.labelled.data import load_beir
    from m3retriever.maintenance.add_branch import add_dense2_branch
    from m3retriever.runtime.wheels import minilm_dir

    manifest = read_manifest(args.model)
    test = load_beir(args.scifact, "test")
    train_all = load_beir(args.scifact, "train")
    recipe = manifest["recipe"]
    _, held = split_heldout(
        TrainingData("scifact", "train", train_all.queries, train_all.qrels), recipe["heldout"], recipe["seed"]
    )
    rows: list[tuple[str, dict[str, float]]] = []
    loads = [load()]
    if args.baseline_json and Path(args.baseline_json).is_file():
        scores = json.loads(Path(args.baseline_json).read_text())
    else:
        scores = baseline(args)
    rows.append(("small pipeline (bge-small dense), fused", scores["fused"]))
    rows.append(("small pipeline (bge-small dense), rerank (default)", scores["rerank"]))
    models = [("fine-tuned", args.model)] + ([("untrained", str(minilm_dir()))] if args.untrained else [])
    for label, ref in models:
        work = Path(args.work) / label
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(args.store, work)
        t = time.perf_counter()
        config = load_config(env={}, profile="small", location=str(work), collection=args.collection,
                             dense2_encoder="sentence-transformers", dense2_model=ref)
        with open_collection(config, must_exist=True) as collection:
            report = add_dense2_branch(collection)
        log(f"[eval] dense2 {label} added in {time.perf_counter() - t:.0f}s: {report}")
        with Retriever(config) as r:
            weights = [float(w) for w in args.weights.split(",")]
            picked = {w: _eval(r, held.queries, held.qrels, dense2_weight=w)["rerank"]["ndcg@10"] for w in weights} if len(weights) > 1 else {}
            best = max(weights, key=lambda w: (picked.get(w, 0.0), -abs(w - 1.0)))
            log(f"[eval] dense2 {label} held-back train queries, nDCG@10 by weight {picked} -> {best}")
            s = _eval(r, test.queries, test.qrels, dense2_weight=best)
            rows.append((f"small pipeline + {label} MiniLM as dense2 (weight {best}), fused", s["fused"]))
            rows.append((f"small pipeline + {label} MiniLM as dense2 (weight {best}), rerank", s["rerank"]))
            log(f"[eval] {label} dense2: {rows[-2:]}")
            rows.append((f"{label} MiniLM alone (dense only)", _alone(r, test.queries, test.qrels)))
            log(f"[eval] {label} alone {rows[-1][1]}")
            if label == "fine-tuned" and args.dense_branch:
                s = _eval(r, test.queries, test.qrels, dense_weight=0.0, dense2_weight=1.0)
                rows.append(("small pipeline, fine-tuned MiniLM as its dense branch (no bge-small), fused", s["fused"]))
                rows.append(("small pipeline, fine-tuned MiniLM as its dense branch (no bge-small), rerank", s["rerank"]))
            log(f"[eval] {label} done: {rows[-2:]}")
        shutil.rmtree(work, ignore_errors=True)
    loads.append(load())
    return markdown(rows, manifest, command, loads)


def _alone(r: Any, queries: Any, qrels: Any) -> dict[str, float]:
    """The dense2 branch alone, exactly over the stored dense2 vectors (no re-encoding)."""
    from m3retriever.finetune.heldout import dense_scores
    from m3retriever.finetune.pairs import TrainingData
    from m3retriever.finetune.trainer import load_model

    records = sorted(r.store.scroll(r.collection, with_vectors=True), key=lambda p: (p.payload["doc_id"], p.payload["chunk_index"]))
    docs = [p.payload["doc_id"] for p in records]
    matrix = np.asarray([p.vectors["dense2"] for p in records], dtype=np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    model = load_model(r.config.dense2_model, 10**6)
    data = TrainingData("test", "test", dict(queries), dict(qrels))
    return dict(dense_scores(model, data, (docs, matrix), metrics=("ndcg@10", "recall@100", "mrr@10")))


def _eval(r: Any, queries: Any, qrels: Any, **options: Any) -> dict[str, dict[str, float]]:
    """The fused and rerank stages with search ``options``, as ``m3retriever eval`` runs them:
    fused to depth 100; rerank = the pipeline's reranked head (its rerank depth), then the
    fused tail."""
    from m3retriever.evaluation.runner import hits_to_ranking, ranking_to_scores
    from m3retriever.labelled.metrics import score

    ids = sorted(q for q in queries if q in qrels)
    head = r.search_settings(**options).rerank_depth
    fused: dict[str, Any] = {}
    rerank: dict[str, Any] = {}
    for i in range(0, len(ids), 32):
        part = ids[i : i + 32]
        texts = [queries[q] for q in part]
        base = r.search_batch(texts, top_k=100, rerank=False, stage_scores=False, **options)
        top = r.search_batch(texts, top_k=head, rerank_depth=head, stage_scores=False, **options)
        for q, f, h in zip(part, base, top):
            tail = hits_to_ranking(f.hits)
            ranking = hits_to_ranking(h.hits)
            fused[q] = ranking_to_scores(tail)
            rerank[q] = ranking_to_scores((ranking + [d for d in tail if d not in set(ranking)])[:100])
    judged = {q: qrels[q] for q in ids}
    metrics = ("ndcg@10", "recall@100", "mrr@10")
    return {"fused": score(judged, fused, metrics), "rerank": score(judged, rerank, metrics)}


def markdown(rows: list[tuple[str, dict[str, float]]], manifest: dict[str, Any], command: str, loads: list[float]) -> str:
    m, tr, rc = manifest, manifest["training"], manifest["recipe"]
    lines = [
        "## Fine-tuning all-MiniLM-L6-v2 on SciFact train",
        "",
        f"Reproduce: `{command}` (after `--stage train`, see below)",
        "",
        f"Training: {m['data']['train_queries']} train queries ({m['data']['examples']} examples, "
        f"{m['data']['heldout_queries']} held back), recipe {json.dumps(rc, sort_keys=True)}; "
        f"{tr['steps']} steps, loss {tr['first_loss']:.3f} -> {tr['last_loss']:.3f}, training {tr['seconds']:.0f} s, "
        f"whole run {m['seconds']:.0f} s. Held-back train queries, dense alone nDCG@10: "
        f"{m['heldout']['before'].get('ndcg@10', float('nan')):.4f} before, {m['heldout']['after'].get('ndcg@10', float('nan')):.4f} after.",
        "",
        f"SciFact test, 300 queries (load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end):",
        "",
        "| run | nDCG@10 | Recall@100 | MRR@10 |",
        "|---|---|---|---|",
    ]
    for name, s in rows:
        lines.append(f"| {name} | {s.get('ndcg@10', float('nan')):.4f} | {s.get('recall@100', float('nan')):.4f} | {s.get('mrr@10', float('nan')):.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=("train", "baseline", "eval"), required=True)
    ap.add_argument("--baseline-json", help="the baseline stage's scores (written by --stage baseline, read by eval)")
    ap.add_argument("--scifact", default=str(DATA))
    ap.add_argument("--store", required=True, help="SciFact ingested with the small profile")
    ap.add_argument("--collection", default="scifact")
    ap.add_argument("--model", required=True, help="fine-tuned model folder (written by train)")
    ap.add_argument("--work", default="/tmp/m3r-bench/finetune", help="scratch copies of the store (eval)")
    ap.add_argument("--out", default=None, help="markdown section (eval)")
    ap.add_argument("--untrained", action="store_true", help="also the untrained model as dense2 (eval)")
    ap.add_argument("--epochs", type=float, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--skip", type=int, default=None)
    ap.add_argument("--negatives", type=int, default=None)
    ap.add_argument("--heldout-pool", type=int, default=None)
    ap.add_argument("--weights", default="1.0", help="dense2 weights to pick from on the held-back train queries (eval)")
    ap.add_argument("--dense-branch", action="store_true", help="also the model as the only dense branch (eval)")
    ap.add_argument("--loss", choices=("mnrl", "cached-mnrl"), default="cached-mnrl", help="cached: ~1 GB instead of ~6 GB")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    command = "python tests/benchmarks/bench_finetune.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    if args.stage == "train":
        train(args)
        return 0
    if args.stage == "baseline":
        baseline(args)
        return 0
    text = evaluate_all(args, command)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
