"""The LlamaIndex adapter plugin (plugins/m3retriever-llamaindex) on a real embedded store with
the tiny random BGE-M3 and reranker models, inside real LlamaIndex objects (query engine,
MockLLM). Random weights rank randomly: the tests check plumbing, never retrieval quality."""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
from pathlib import Path

import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("m3retriever_llamaindex")

from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.schema import (  # noqa: E402
    Document as LlamaDocument,
)
from llama_index.core.schema import (
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)

from m3retriever import InputError, load_config  # noqa: E402
from m3retriever.ingest import point_id  # noqa: E402
from m3retriever.plugins import adapter_factories, get_adapter, list_plugins  # noqa: E402
from m3retriever.retriever import Retriever  # noqa: E402
from m3retriever_llamaindex import M3RetrieverLlamaIndex, ingest_llamaindex  # noqa: E402
from m3retriever_llamaindex.plugin import make_llamaindex_retriever  # noqa: E402

SCORE_KEYS = {
    "dense", "dense_rank", "sparse", "sparse_rank", "bm25", "bm25_rank", "dense2", "dense2_rank", "fused", "fused_rank",
    "multivector", "multivector_rank", "rerank_logit", "rerank", "rerank_rank", "confidence", "final", "final_rank", "relevance_rank", "doc_best_rank",
}


@pytest.fixture(scope="module")
def corpus_retriever(tmp_path_factory: pytest.TempPathFactory, tiny_settings: dict, corpus_docs: list[dict]):
    """One retriever over the test corpus for the read-only tests of this module."""
    cfg = load_config(env={}, location=str(tmp_path_factory.mktemp("li-store")), **tiny_settings)
    r = Retriever(cfg)
    r.ingest(corpus_docs)
    yield r
    r.close()


def _check_node(nws: NodeWithScore, *, corpus: dict[str, dict]) -> None:
    node = nws.node
    md = node.metadata
    doc = corpus[md["doc_id"]]
    assert node.node_id == point_id(md["doc_id"], md["chunk_index"])  # our chunk id
    assert node.get_content() == doc["text"]
    assert md["source"] == doc["source"]
    for key, value in doc["metadata"].items():
        assert md[key] == value
    assert set(md["m3r_scores"]) == SCORE_KEYS
    assert nws.score == md["m3r_scores"]["final"]
    assert md["m3r_scores"]["rerank"] == pytest.approx(1 / (1 + math.exp(-md["m3r_scores"]["rerank_logit"])))
    # the calibrated confidence, comparable across queries, beside the relative ordering score
    assert md["m3r_confidence"] == md["m3r_scores"]["confidence"] and 0.0 <= md["m3r_confidence"] <= 1.0
    assert node.ref_doc_id == md["doc_id"]
    # Scores stay out of what the LLM reads; user metadata, doc_id and source stay in.
    llm_text = node.get_content(metadata_mode=MetadataMode.LLM)
    assert "m3r_scores" not in llm_text and "rerank_logit" not in llm_text and "m3r_confidence" not in llm_text
    assert f"doc_id: {md['doc_id']}" in llm_text and f"lang: {doc['metadata']['lang']}" in llm_text


def test_retrieve_returns_nodes_with_scores_and_metadata(corpus_retriever, corpus_docs):
    corpus = {d["doc_id"]: d for d in corpus_docs}
    li = M3RetrieverLlamaIndex(corpus_retriever, top_k=4)
    nodes = li.retrieve("capital of France")
    assert len(nodes) == 4
    assert [n.node.metadata["m3r_scores"]["final_rank"] for n in nodes] == [1, 2, 3, 4]
    scores = [n.score for n in nodes]
    assert scores == sorted(scores, reverse=True)
    for nws in nodes:
        _check_node(nws, corpus=corpus)
    # Same hits, same order as the underlying retriever.
    assert [n.node.node_id for n in nodes] == [h.id for h in corpus_retriever.search("capital of France", top_k=4)]


def test_query_engine_with_mock_llm(corpus_retriever, corpus_docs):
    corpus = {d["doc_id"]: d for d in corpus_docs}
    li = M3RetrieverLlamaIndex(corpus_retriever, top_k=3)
    engine = RetrieverQueryEngine.from_args(li, llm=MockLLM())
    response = engine.query("vector database filters")
    assert isinstance(str(response), str)
    assert len(response.source_nodes) == 3
    for nws in response.source_nodes:
        _check_node(nws, corpus=corpus)
    assert response.source_nodes[0].node.metadata["m3r_scores"]["final_rank"] == 1


async def test_query_engine_aquery(corpus_retriever):
    engine = RetrieverQueryEngine.from_args(M3RetrieverLlamaIndex(corpus_retriever, top_k=2), llm=MockLLM())
    response = await engine.aquery("loyal animals")
    assert len(response.source_nodes) == 2


async def test_aretrieve_does_not_block_the_event_loop(corpus_retriever):
    li = M3RetrieverLlamaIndex(corpus_retriever, top_k=5)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    before = ticks
    nodes = await li.aretrieve(QueryBundle("rank fusion"))
    during = ticks - before
    stop.set()
    await task
    assert len(nodes) == 5
    assert during >= 2, f"the event loop ticked {during} times during aretrieve: it was blocked"
    sync = li.retrieve("rank fusion")
    assert [n.node.node_id for n in nodes] == [n.node.node_id for n in sync]
    assert [n.score for n in nodes] == pytest.approx([n.score for n in sync])


async def test_concurrent_aretrieve(corpus_retriever):
    li = M3RetrieverLlamaIndex(corpus_retriever, top_k=3)
    queries = ["capital of France", "stock market", "rank fusion"]
    results = await asyncio.gather(*(li.aretrieve(q) for q in queries))
    for q, nodes in zip(queries, results):
        assert [n.node.node_id for n in nodes] == [n.node.node_id for n in li.retrieve(q)]


def test_filter_and_search_options(corpus_retriever):
    li = M3RetrieverLlamaIndex(corpus_retriever, top_k=10, filter={"topic": "geo", "year": {"gte": 2001}})
    nodes = li.retrieve("capital")
    assert [n.node.metadata["doc_id"] for n in nodes] == ["madrid"]
    no_rerank = M3RetrieverLlamaIndex(corpus_retriever, top_k=3, search_options={"rerank": False})
    for nws in no_rerank.retrieve("capital"):
        scores = nws.node.metadata["m3r_scores"]
        assert scores["rerank"] is None and nws.score == scores["fused"]


def test_invalid_options_fail_at_construction(corpus_retriever):
    with pytest.raises(InputError):
        M3RetrieverLlamaIndex(corpus_retriever, filter={"year": 1.5})
    with pytest.raises(InputError):
        M3RetrieverLlamaIndex(corpus_retriever, top_k=0)
    with pytest.raises(InputError):
        M3RetrieverLlamaIndex(object())  # type: ignore[arg-type]


def test_ingest_llamaindex_documents_and_nodes(make_retriever, caplog):
    r = make_retriever()
    when = datetime.date(2024, 1, 2)
    documents = [
        LlamaDocument(
            text="Qdrant Edge is an embedded vector search engine.",
            doc_id="edge",
            metadata={"lang": "en", "tags": ["db", "rust"], "when": when, "file_path": "/docs/edge.md"},
        ),
        LlamaDocument(text="Croissants are a French pastry made with butter.", doc_id="food",
                      metadata={"lang": "en", "m3r_scores": {"final": 1.0}, "nan": float("nan")}),
    ]
    node = TextNode(
        id_="node-1",
        text="Hybrid search fuses dense and sparse rankings with reciprocal rank fusion.",
        metadata={"lang": "en", "source": "https://example.org/hybrid", "page": 3},
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id="hybrid-paper")},
    )
    orphan = TextNode(id_="node-2", text="A node without a parent document.", metadata={"lang": "fr"})
    with caplog.at_level(logging.WARNING):
        report = ingest_llamaindex(r, [*documents, node, orphan])
    assert (report.documents, report.added) == (4, 4)
    # Non-JSON values are dropped (and logged), reserved/m3r_ keys are taken out.
    assert "'when' (date)" in caplog.text and "'nan' (float)" in caplog.text

    li = M3RetrieverLlamaIndex(r, top_k=10)
    by_doc = {n.node.metadata["doc_id"]: n for n in li.retrieve("vector search")}
    assert set(by_doc) == {"edge", "food", "node-1", "node-2"}

    edge = by_doc["edge"].node
    assert edge.get_content() == documents[0].text
    assert edge.metadata["tags"] == ["db", "rust"] and "when" not in edge.metadata
    assert edge.metadata["file_path"] == "/docs/edge.md" and edge.metadata["source"] == "/docs/edge.md"
    assert edge.ref_doc_id == "edge"

    food = by_doc["food"].node.metadata
    assert "nan" not in food and set(food["m3r_scores"]) == SCORE_KEYS  # stale scores not stored

    hybrid = by_doc["node-1"].node
    assert hybrid.get_content() == node.text
    assert hybrid.metadata["source"] == "https://example.org/hybrid" and hybrid.metadata["page"] == 3
    assert hybrid.metadata["ref_doc_id"] == "hybrid-paper" and hybrid.ref_doc_id == "hybrid-paper"
    assert by_doc["node-2"].node.ref_doc_id == "node-2" and "ref_doc_id" not in by_doc["node-2"].node.metadata

    # ref_doc_id is filterable, so a source document's nodes can be found or deleted.
    assert [n.node.metadata["doc_id"] for n in M3RetrieverLlamaIndex(r, filter={"ref_doc_id": "hybrid-paper"}).retrieve("x")] == ["node-1"]
    assert r.delete(filter={"ref_doc_id": "hybrid-paper"}) == 1

    # Re-ingesting the same objects is idempotent; bad input is rejected clearly.
    assert li.ingest([*documents, orphan]).skipped == 3
    with pytest.raises(InputError, match="wrap a single one in a list"):
        ingest_llamaindex(r, documents[0])
    with pytest.raises(InputError, match="expected a LlamaIndex Document or node"):
        ingest_llamaindex(r, [{"text": "x", "doc_id": "y"}])


async def test_aingest_then_aretrieve(make_retriever):
    li = M3RetrieverLlamaIndex(make_retriever(), top_k=2)
    report = await li.aingest([LlamaDocument(text="Tea is brewed from leaves.", doc_id="tea"),
                               LlamaDocument(text="Coffee is brewed from beans.", doc_id="coffee")])
    assert report.added == 2
    nodes = await li.aretrieve("brewed")
    assert {n.node.metadata["doc_id"] for n in nodes} == {"tea", "coffee"}


def test_found_through_the_plugin_registry(corpus_retriever):
    assert adapter_factories()["llamaindex"] is make_llamaindex_retriever
    li = get_adapter("llamaindex", corpus_retriever, top_k=2)
    assert isinstance(li, M3RetrieverLlamaIndex) and li.m3_retriever is corpus_retriever
    assert len(li.retrieve("capital")) == 2
    info = {p.name: p for p in list_plugins()}["llamaindex"]
    assert info.distribution == "m3retriever-llamaindex"
    assert info.components == {"register_adapters": ("llamaindex",)}


def test_from_config_uses_the_shared_retriever(tmp_path: Path, tiny_settings: dict, corpus_docs):
    cfg = load_config(env={}, location=str(tmp_path / "shared"), **tiny_settings)
    a = M3RetrieverLlamaIndex.from_config(cfg, top_k=3)
    try:
        b = M3RetrieverLlamaIndex.from_config(cfg)
        assert a.m3_retriever is b.m3_retriever is Retriever.shared(cfg)
        a.ingest([LlamaDocument(text=d["text"], doc_id=d["doc_id"]) for d in corpus_docs[:4]])
        assert len(b.retrieve("bm25")) == 4 and len(a.retrieve("bm25")) == 3
    finally:
        a.m3_retriever.close()


LONG = " ".join(f"Sentence {i} tells of topic {i % 7}, of river {i % 5} and hill {i % 3}." for i in range(40))
"""Many chunks at the tiny settings (48 tokens, 8 of overlap)."""


def test_expanded_nodes_and_parent_documents(make_retriever):
    from m3retriever import ConfigError
    from m3retriever_llamaindex import CHUNKS_KEY, CONTEXT_KEY

    r = make_retriever(reranker="none")
    r.add_texts([LONG], ids=["long"], metadatas=[{"lang": "en"}])
    li = M3RetrieverLlamaIndex(r, top_k=3, expand=1)
    nodes = li.retrieve("river hill topic")
    hits = r.search("river hill topic", top_k=3, expand=1).hits
    assert [n.node.node_id for n in nodes] == [h.id for h in hits] and len(nodes) == 3
    for nws, h in zip(nodes, hits):
        node = nws.node
        ctx = node.metadata[CONTEXT_KEY]
        assert node.get_content() == h.context.text and node.get_content() != h.text
        assert node.get_content()[ctx["start"] : ctx["end"]] == h.text
        assert node.ref_doc_id == "long" and node.parent_node.node_id == "long"
        assert CONTEXT_KEY not in node.get_content(metadata_mode=MetadataMode.LLM)
    doc = li.get_document(nodes[0].node.parent_node.node_id)
    assert isinstance(doc, LlamaDocument) and doc.doc_id == "long" and doc.text == LONG
    assert doc.metadata["lang"] == "en" and doc.metadata[CHUNKS_KEY][-1][2] == len(LONG)
    assert CHUNKS_KEY not in doc.get_content(metadata_mode=MetadataMode.LLM)
    assert asyncio.run(li.aget_document("long")).text == LONG
    assert li.get_document("missing") is None
    assert li.ingest([doc]).skipped == 1  # the same document: stored unchanged
    engine = RetrieverQueryEngine.from_args(li, llm=MockLLM())
    response = engine.query("river hill topic")
    assert [n.node.get_content() for n in response.source_nodes] == [h.context.text for h in hits]
    assert M3RetrieverLlamaIndex(r, top_k=3).retrieve("river hill topic")[0].node.get_content() == hits[0].text
    with pytest.raises(ConfigError, match="expand"):
        M3RetrieverLlamaIndex(r, expand=21)
