"""The benchmark script's smoke run: it runs end to end and writes every table.

Timings are never asserted (CI machines vary); only the report's structure is checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"


@pytest.mark.slow
def test_run_all_smoke_writes_every_table(tmp_path):
    pytest.importorskip("ranx")
    out = tmp_path / "bench.md"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "benchmarks" / "run_all.py"), "--smoke", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("# Benchmarks (smoke run")
    assert "## Store speed (synthetic vectors, production sizes)" in text
    assert "| backend | chunks | p50 ms | p95 ms | recall@100 |" in text
    assert "Qdrant Edge (embedded, ours)" in text and "qdrant-client local mode" in text
    assert text.count("Reproduce: `python tests/benchmarks/run_all.py --smoke") >= 1
    if SCIFACT.is_dir():
        assert "## SciFact quality (small profile) and peer pipelines" in text
        for stage in ("ours: dense", "ours: sparse", "ours: bm25", "ours: fused", "ours: rerank"):
            assert f"| {stage} |" in text
        assert "## Ingest throughput (small profile)" in text
        assert "| docs | chunks | end-to-end chunks/s | raw encoders chunks/s | ratio |" in text
        assert "## End-to-end query latency (small profile)" in text
        assert "| rerank depth | encode | search | rerank | total |" in text
        assert "## Cross-encoder cost against pair length (small profile's reranker)" in text
        assert "| max tokens per pair | p50 ms | p95 ms | pairs/s (p50) |" in text
    else:
        assert "SciFact not found" in text
    assert out.with_suffix(".json").is_file()
