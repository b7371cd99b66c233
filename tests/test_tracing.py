"""Timings per stage on every result, and the optional OpenTelemetry spans of a search: with
the SDK (when installed) a search is a ``m3retriever.search`` span with ``encode``, ``query``
and one ``rerank`` per query under it; without the API, searches work, import nothing of it,
and say so once in a debug line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from m3retriever.search import tracing

DOCS = [
    {"doc_id": "paris", "text": "Paris is the capital and largest city of France."},
    {"doc_id": "berlin", "text": "Berlin is the capital of Germany, on the Spree."},
    {"doc_id": "qdrant", "text": "Qdrant is a vector database written in Rust."},
]


@pytest.fixture
def retriever(make_retriever):
    r = make_retriever(bm25=True)
    r.ingest(DOCS)
    return r


def test_every_result_has_its_stage_timings(retriever):
    results = retriever.search_batch(["capital of France", "vector database"], top_k=2, adaptive=True)
    for result in results:
        t = result.timings_ms
        assert {"encode", "search", "rerank", "total"} <= set(t) and all(v >= 0 for v in t.values())
        assert t["total"] == pytest.approx(t["encode"] + t["search"] + t["rerank"])
        # adaptive fusion reads each branch's own ranking first, then the fused one
        assert t["search"] == pytest.approx(t["branches"] + t["fuse"])
        assert json.loads(json.dumps(result.as_dict()))["timings_ms"] == pytest.approx(dict(t))  # search --json
    one = retriever.search("capital of France", top_k=2, adaptive=False).timings_ms
    assert "branches" not in one and one["total"] > 0


def test_without_the_api_search_works_and_says_so_once(retriever, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    monkeypatch.setattr(tracing, "_tracer", tracing._UNSET)
    with caplog.at_level(logging.DEBUG, logger=tracing.__name__):
        for _ in range(2):
            assert retriever.search("capital of France", top_k=2).hits
    assert tracing.tracer() is None and tracing.span("x") is tracing.span("y")  # one shared no-op
    said = [r for r in caplog.records if r.name == tracing.__name__]
    assert len(said) == 1 and "no OpenTelemetry spans" in said[0].getMessage()


def test_importing_the_package_imports_no_tracing():
    code = "import sys, m3retriever.search, m3retriever.retriever; print('opentelemetry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_spans_of_a_search_with_the_sdk(retriever, monkeypatch):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("m3retriever"))
    with trace.get_tracer("app", tracer_provider=provider).start_as_current_span("request"):
        retriever.search_batch(["capital of France", "vector database"], top_k=2)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    reranks = [s for s in exporter.get_finished_spans() if s.name == "rerank"]
    assert set(spans) == {"request", "m3retriever.search", "encode", "query", "rerank"} and len(reranks) == 2
    root = spans["m3retriever.search"]
    assert root.parent.span_id == spans["request"].context.span_id  # under the application's span
    for child in (spans["encode"], spans["query"], *reranks):
        assert child.parent.span_id == root.context.span_id
    assert root.attributes["m3retriever.collection"] == retriever.collection
    assert root.attributes["m3retriever.queries"] == 2 and root.attributes["m3retriever.top_k"] == 2
    assert {k for k in root.attributes if k.startswith("m3retriever.weight.")} >= {
        "m3retriever.weight.dense",
        "m3retriever.weight.sparse",
        "m3retriever.weight.bm25",
    }
    assert sorted(s.attributes["m3retriever.query_index"] for s in reranks) == [0, 1]
