"""The BM25 branch against bm25s, the reference implementation, on real collections.

Same analyzer tokens, k1 = 1.2, b = 0.75, Lucene IDF; our ranking comes from the engine (Qdrant's
IDF modifier over the stored saturated term frequencies). Target: within 0.005 nDCG@10 (see
docs/benchmarks.md, "BM25 against bm25s"). Skipped without ``../shared/data`` or bm25s.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("bm25s")
pytest.importorskip("ranx")

sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
import bench_bm25  # noqa: E402

pytestmark = pytest.mark.slow  # the real SciFact and XQuAD-R collections


@pytest.mark.parametrize("name", ["scifact", "xquad-r-en"])
def test_bm25_branch_matches_bm25s(tmp_path: Path, name: str) -> None:
    folder = bench_bm25.DATASETS[name]
    if not (folder / "corpus.jsonl.gz").is_file():
        pytest.skip(f"{folder} not found (the shared evaluation data sits beside the checkout)")
    corpus, queries, qrels = bench_bm25.load(folder)
    ours = bench_bm25.metrics(qrels, bench_bm25.ours(name, corpus, queries, tmp_path / "store")["run"])
    reference = bench_bm25.metrics(qrels, bench_bm25.references(corpus, queries)["bm25s (our analyzer)"])
    assert abs(ours["ndcg@10"] - reference["ndcg@10"]) <= 0.005, (ours, reference)
    assert abs(ours["recall@100"] - reference["recall@100"]) <= 0.005, (ours, reference)
