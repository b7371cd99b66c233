"""The rankings of a few small collections, to pin that a change of structure changes no
result: every stage's score of every hit, for the tiny random models (deterministic weights).

Run at any commit (``PYTHONPATH=<checkout>/src python tests/rankings_probe.py OUT.json``): it
uses only what every version since 5a69ccf offers (``Retriever``, ``load_config``,
``m3retriever.renormalize``). tests/test_same_rankings.py compares today's rankings with the
file it wrote at commit 5a69ccf (tests/data/rankings-5a69ccf.json).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import CORPUS, QUERIES  # noqa: E402
from tinymodels import build_tiny_bge_m3, build_tiny_reranker  # noqa: E402

STAGES = ("dense", "sparse", "bm25", "fused", "maxsim", "rerank", "final")
SETUPS: dict[str, dict[str, Any]] = {
    "bge-m3": {},
    "bge-m3+bm25+multivector": {"bm25": True, "multivector": True},
    "tenant acme": {"tenant_field": "org", "tenant": "acme"},
}


def _fixed_weights() -> dict[str, Any]:
    """The configured branch weights for every query: the rankings 5a69ccf gave, before
    adaptive fusion (a search option since) weighed the branches per query."""
    from dataclasses import fields

    from m3retriever import SearchConfig

    return {"adaptive": False} if "adaptive" in {f.name for f in fields(SearchConfig)} else {}


FIXED_WEIGHTS = _fixed_weights()


def _hit(hit: Any) -> dict[str, Any]:
    scores = {s: getattr(hit.scores, s, None) for s in STAGES}
    return {"doc_id": hit.doc_id, **{k: (round(float(v), 5) if v is not None else None) for k, v in scores.items()}}


def rankings(work: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Setup -> query -> hits (doc id and each stage's score, 5 decimals)."""
    import m3retriever
    from m3retriever import Retriever, load_config

    base = {
        "profile": "bge-m3", "dense_model": str(build_tiny_bge_m3(work / "m3")),
        "reranker_model": str(build_tiny_reranker(work / "rr")), "device": "cpu", "batch_size": 8,
        "max_length": 128, "chunk_tokens": 48, "chunk_overlap": 8,
    }
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name, extra in SETUPS.items():
        location = str(work / name.replace(" ", "-").replace("+", "-"))
        docs = [{"doc_id": d, "text": t, "metadata": {**m, "org": "acme" if i % 2 else "globex"}} for i, (d, t, m) in enumerate(CORPUS)]
        unscoped = {k: v for k, v in extra.items() if k != "tenant"}
        with Retriever(load_config(env={}, location=location, **base, **unscoped)) as r:
            r.ingest(docs)
            if extra.get("bm25"):
                m3retriever.renormalize(r.opened)  # exact BM25 lengths, whatever the write batches were
        with Retriever(load_config(env={}, location=location, **base, **extra)) as r:
            out[name] = {q: [_hit(h) for h in r.search(q, top_k=5, **FIXED_WEIGHTS).hits] for q in QUERIES}
    return out


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        Path(sys.argv[1]).write_text(json.dumps(rankings(Path(tmp)), indent=1) + "\n")
