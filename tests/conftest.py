"""Shared pytest fixtures.

The Hugging Face hub is unreachable on our machines: every test runs offline.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Optimised ONNX graphs of the tests' throwaway models go to a folder of this run, not the
# user's cache (subprocesses inherit it).
if "M3R_ONNX_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["M3R_ONNX_CACHE"] = tempfile.mkdtemp(prefix="m3r-test-onnx-")
    atexit.register(shutil.rmtree, os.environ["M3R_ONNX_CACHE"], True)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tinymodels import build_tiny_bge_m3, build_tiny_reranker  # noqa: E402

# tests/benchmarks/ holds `make bench` scripts, not tests (no conftest.py of its own there:
# a second conftest module would shadow this one for `from conftest import ...`).
collect_ignore = ["benchmarks"]


@pytest.fixture(scope="session")
def tiny_bge_m3_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model with the BGE-M3 layout (hidden size 32), built once per session."""
    return build_tiny_bge_m3(tmp_path_factory.mktemp("tiny-bge-m3"))


@pytest.fixture(scope="session")
def tiny_reranker_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random cross-encoder with the bge-reranker layout, built once per session."""
    return build_tiny_reranker(tmp_path_factory.mktemp("tiny-reranker"))


@pytest.fixture(scope="session")
def onnx_exports(tmp_path_factory: pytest.TempPathFactory, tiny_bge_m3_path: Path, tiny_reranker_path: Path) -> dict:
    """The tiny models exported by ``export_onnx`` once per session: ``{"m3", "m3-int8",
    "reranker", "reranker-int8"}`` -> export directory."""
    from m3retriever.export import export_onnx

    root = tmp_path_factory.mktemp("onnx-exports")
    sources = {"m3": tiny_bge_m3_path, "reranker": tiny_reranker_path}
    return {
        name + suffix: export_onnx(str(source), root / (name + suffix), int8=bool(suffix))
        for name, source in sources.items()
        for suffix in ("", "-int8")
    }


CORPUS = [
    ("qdrant", "Qdrant is a vector database written in Rust with HNSW indexes and payload filters.", {"lang": "en", "year": 2021, "topic": "db"}),
    ("bge", "BGE-M3 produces dense, sparse and multi-vector embeddings in one forward pass.", {"lang": "en", "year": 2024, "topic": "model"}),
    ("rrf", "Reciprocal rank fusion merges ranked lists by summing one over k plus rank.", {"lang": "en", "year": 2009, "topic": "ir"}),
    ("bm25", "BM25 scores documents by term frequency saturation and inverse document frequency.", {"lang": "en", "year": 1994, "topic": "ir"}),
    ("rerank", "A cross-encoder reranker reads the query and passage together and outputs a logit.", {"lang": "en", "year": 2019, "topic": "model"}),
    ("paris", "Paris is the capital of France and lies on the river Seine.", {"lang": "en", "year": 2000, "topic": "geo"}),
    ("berlin", "Berlin ist die Hauptstadt von Deutschland und liegt an der Spree.", {"lang": "de", "year": 2000, "topic": "geo"}),
    ("madrid", "Madrid es la capital de Espana y esta en el centro del pais.", {"lang": "es", "year": 2001, "topic": "geo"}),
    ("cat", "The cat sat on the mat and watched the birds in the garden.", {"lang": "en", "year": 2015, "topic": "animals"}),
    ("dog", "Dogs are loyal animals that enjoy long walks in the park.", {"lang": "en", "year": 2016, "topic": "animals"}),
    ("market", "The stock market report showed shares falling after the interest rate decision.", {"lang": "en", "year": 2023, "topic": "finance"}),
    ("python", "Python is a programming language with a large standard library and many packages.", {"lang": "en", "year": 2020, "topic": "code"}),
]

QUERIES = ["vector database filters", "capital of France", "rank fusion", "loyal animals", "stock market"]


@pytest.fixture(scope="session")
def corpus_docs() -> list[dict]:
    """A small multilingual corpus with metadata, as ingest mappings."""
    return [
        {"doc_id": d, "text": t, "metadata": m, "source": f"test://{d}"} for d, t, m in CORPUS
    ]


@pytest.fixture(scope="session")
def tiny_settings(tiny_bge_m3_path: Path, tiny_reranker_path: Path) -> dict:
    """Config settings for the bge-m3 profile backed by the tiny random models."""
    return {
        "profile": "bge-m3",
        "dense_model": str(tiny_bge_m3_path),
        "reranker_model": str(tiny_reranker_path),
        "device": "cpu",
        "batch_size": 8,
        "max_length": 128,
        "chunk_tokens": 48,
        "chunk_overlap": 8,
    }


@pytest.fixture
def config_file(tmp_path: Path, tiny_settings: dict) -> Path:
    """A TOML configuration for the CLI: an embedded store in ``tmp_path`` and the tiny models."""
    lines = [f"location = {json.dumps(str(tmp_path / 'store'))}", 'collection = "cli"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in tiny_settings.items()]
    path = tmp_path / "m3r.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def make_retriever(tmp_path: Path, tiny_settings: dict):
    """Factory: ``make_retriever(location=None, **settings)`` -> an open Retriever, closed after the test."""
    from m3retriever import Retriever, load_config

    opened = []

    def make(location: str | None = None, **settings):
        cfg = load_config(env={}, **{"location": location or str(tmp_path / "store"), **tiny_settings, **settings})
        r = Retriever(cfg)
        opened.append(r)
        return r

    yield make
    for r in opened:
        r.close()
