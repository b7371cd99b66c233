"""The LangChain adapter plugin (plugins/m3retriever-langchain) on a real embedded store with the
tiny random BGE-M3 and reranker models: langchain-tests' standard retriever suite, a real LCEL
chain with a fake chat model, batch/abatch and ingest. Random weights rank randomly: the tests
check plumbing, never retrieval quality."""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("m3retriever_langchain")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.documents import Document as LCDocument  # noqa: E402
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402
from langchain_core.runnables import RunnableLambda, RunnablePassthrough  # noqa: E402
from langchain_tests.integration_tests import RetrieversIntegrationTests  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from m3retriever import ConfigError, InputError, load_config  # noqa: E402
from m3retriever.ingest import point_id  # noqa: E402
from m3retriever.plugins import adapter_factories, get_adapter, list_plugins  # noqa: E402
from m3retriever.retriever import Retriever  # noqa: E402
from m3retriever_langchain import M3RetrieverLangChain, ingest_langchain  # noqa: E402
from m3retriever_langchain.plugin import make_langchain_retriever  # noqa: E402

SCORE_KEYS = {
    "dense", "dense_rank", "sparse", "sparse_rank", "bm25", "bm25_rank", "dense2", "dense2_rank", "fused", "fused_rank",
    "multivector", "multivector_rank", "rerank_logit", "rerank", "rerank_rank", "confidence", "final", "final_rank", "relevance_rank", "doc_best_rank",
}


@pytest.fixture(scope="module")
def corpus_retriever(tmp_path_factory: pytest.TempPathFactory, tiny_settings: dict, corpus_docs: list[dict]):
    """One retriever over the test corpus for the read-only tests of this module."""
    cfg = load_config(env={}, location=str(tmp_path_factory.mktemp("lc-store")), **tiny_settings)
    r = Retriever(cfg)
    r.ingest(corpus_docs)
    yield r
    r.close()


class TestStandardRetrieverSuite(RetrieversIntegrationTests):
    """langchain-tests' standard integration suite for retrievers (k in constructor and invoke,
    invoke/ainvoke return Documents). It builds the retriever from keyword arguments, so the
    shared corpus retriever is handed over through an autouse fixture."""

    @pytest.fixture(autouse=True)
    def _m3(self, corpus_retriever: Retriever) -> None:
        self._m3_retriever = corpus_retriever

    @property
    def retriever_constructor(self) -> type[M3RetrieverLangChain]:
        return M3RetrieverLangChain

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"retriever": self._m3_retriever, "k": 5}

    @property
    def retriever_query_example(self) -> str:
        return "capital of France"


def _check_document(doc: LCDocument, corpus: dict[str, dict]) -> None:
    md = doc.metadata
    src = corpus[md["doc_id"]]
    assert doc.id == point_id(md["doc_id"], md["chunk_index"])  # our chunk id
    assert doc.page_content == src["text"]
    assert md["source"] == src["source"]
    for key, value in src["metadata"].items():
        assert md[key] == value
    scores = md["m3r_scores"]
    assert set(scores) == SCORE_KEYS
    assert scores["rerank"] == pytest.approx(1 / (1 + math.exp(-scores["rerank_logit"])))
    # the calibrated confidence, comparable across queries, beside the relative ordering score
    assert md["m3r_confidence"] == scores["confidence"] and 0.0 <= md["m3r_confidence"] <= 1.0


def test_documents_carry_chunk_id_metadata_and_scores(corpus_retriever, corpus_docs):
    corpus = {d["doc_id"]: d for d in corpus_docs}
    lc = M3RetrieverLangChain(retriever=corpus_retriever, k=4)
    docs = lc.invoke("vector database filters")
    assert len(docs) == 4
    assert [d.metadata["m3r_scores"]["final_rank"] for d in docs] == [1, 2, 3, 4]
    finals = [d.metadata["m3r_scores"]["final"] for d in docs]
    assert finals == sorted(finals, reverse=True)
    for doc in docs:
        _check_document(doc, corpus)
    hits = corpus_retriever.search("vector database filters", top_k=4)
    assert [d.id for d in docs] == [h.id for h in hits]


def test_per_call_k_filter_and_search_options(corpus_retriever):
    lc = M3RetrieverLangChain(retriever=corpus_retriever, filter={"lang": "en"})
    assert len(lc.invoke("capital")) == 10  # k=None: the retriever's search.top_k
    docs = lc.invoke("capital", k=10, filter={"topic": "geo"})  # ANDed with lang=en
    assert [d.metadata["doc_id"] for d in docs] == ["paris"]
    docs = lc.invoke("capital", k=3, rerank=False)  # any SearchConfig field per call
    assert len(docs) == 3
    assert all(d.metadata["m3r_scores"]["rerank"] is None for d in docs)
    with pytest.raises(ConfigError):
        lc.invoke("capital", not_an_option=1)
    with pytest.raises(InputError):
        lc.invoke("capital", k=0)
    with pytest.raises(InputError):
        lc.invoke("capital", filter={"year": 1.5})


def test_invalid_fields_fail_at_construction(corpus_retriever):
    with pytest.raises(ValidationError):
        M3RetrieverLangChain(retriever=corpus_retriever, k=0)
    with pytest.raises(ValidationError):
        M3RetrieverLangChain(retriever=object())
    with pytest.raises((InputError, ValidationError)):
        M3RetrieverLangChain(retriever=corpus_retriever, filter={"year": 1.5})


class _PromptRecorder(BaseCallbackHandler):
    """Records what the chat model was sent and what the retriever returned."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.retrieved: list[list[LCDocument]] = []

    def on_chat_model_start(self, serialized: Any, messages: list[list[Any]], **kwargs: Any) -> None:
        self.prompts.append("\n".join(m.content for batch in messages for m in batch))

    def on_retriever_end(self, documents: Any, **kwargs: Any) -> None:
        self.retrieved.append(list(documents))


def _format_docs(docs: list[LCDocument]) -> str:
    return "\n\n".join(f"[{d.metadata['doc_id']}] {d.page_content}" for d in docs)


def test_lcel_chain_with_fake_chat_model(corpus_retriever):
    retriever = M3RetrieverLangChain(retriever=corpus_retriever, k=3)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from the context only.\n\nContext:\n{context}"), ("human", "{question}")]
    )
    model = GenericFakeChatModel(messages=iter([AIMessage(content="Paris [paris]")]))
    chain = (
        {"context": retriever | RunnableLambda(_format_docs), "question": RunnablePassthrough()}
        | prompt
        | model
        | StrOutputParser()
    )
    recorder = _PromptRecorder()
    answer = chain.invoke("capital of France", config={"callbacks": [recorder]})
    assert answer == "Paris [paris]"
    assert len(recorder.retrieved) == 1 and len(recorder.retrieved[0]) == 3
    (sent,) = recorder.prompts
    assert "capital of France" in sent
    for doc in recorder.retrieved[0]:
        assert f"[{doc.metadata['doc_id']}] {doc.page_content}" in sent


async def test_lcel_chain_ainvoke(corpus_retriever):
    retriever = M3RetrieverLangChain(retriever=corpus_retriever, k=2)
    prompt = ChatPromptTemplate.from_messages([("human", "{context}\n\nQ: {question}")])
    model = GenericFakeChatModel(messages=iter([AIMessage(content="ok")]))
    chain = {"context": retriever | _format_docs, "question": RunnablePassthrough()} | prompt | model | StrOutputParser()
    assert await chain.ainvoke("loyal animals") == "ok"


def test_batch(corpus_retriever):
    lc = M3RetrieverLangChain(retriever=corpus_retriever, k=2)
    queries = ["capital of France", "stock market", "rank fusion"]
    batched = lc.batch(queries, k=3)
    assert [len(docs) for docs in batched] == [3, 3, 3]
    for q, docs in zip(queries, batched):
        assert [d.id for d in docs] == [d.id for d in lc.invoke(q, k=3)]


async def test_abatch_and_ainvoke_do_not_block_the_event_loop(corpus_retriever):
    lc = M3RetrieverLangChain(retriever=corpus_retriever, k=2)
    queries = ["capital of France", "stock market", "rank fusion"]
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
    single = await lc.ainvoke("loyal animals", k=4)
    during = ticks - before
    batched = await lc.abatch(queries)
    stop.set()
    await task
    assert during >= 2, f"the event loop ticked {during} times during ainvoke: it was blocked"
    assert [d.id for d in single] == [d.id for d in lc.invoke("loyal animals", k=4)]
    assert [[d.id for d in docs] for docs in batched] == [[d.id for d in lc.invoke(q)] for q in queries]


def test_ingest_langchain_documents(make_retriever, caplog):
    r = make_retriever()
    docs = [
        LCDocument(
            page_content="Qdrant Edge is an embedded vector search engine.",
            id="edge",
            metadata={"source": "/docs/edge.md", "lang": "en", "tags": ("db", "rust"), "when": datetime.date(2024, 1, 2)},
        ),
        LCDocument(
            page_content="Croissants are a French pastry made with butter.",
            metadata={"doc_id": "food", "lang": "en", "m3r_scores": {"final": 1.0}, "a.b": 1},
        ),
        LCDocument(page_content="A document without any id.", metadata={"lang": "fr"}),
    ]
    with caplog.at_level(logging.WARNING):
        report = ingest_langchain(r, docs)
    assert (report.documents, report.added) == (3, 3)
    assert "'when' (date)" in caplog.text and "'a.b'" in caplog.text

    lc = M3RetrieverLangChain(retriever=r, k=10)
    by_doc = {d.metadata["doc_id"]: d for d in lc.invoke("vector search")}
    assert len(by_doc) == 3 and {"edge", "food"} <= set(by_doc)
    (anon,) = set(by_doc) - {"edge", "food"}
    assert len(anon) == 32 and by_doc[anon].metadata["lang"] == "fr" and by_doc[anon].metadata["source"] is None

    edge = by_doc["edge"]
    assert edge.page_content == docs[0].page_content and edge.id == point_id("edge", 0)
    assert edge.metadata["source"] == "/docs/edge.md" and edge.metadata["tags"] == ["db", "rust"]
    assert "when" not in edge.metadata
    food = by_doc["food"].metadata
    assert "a.b" not in food and set(food["m3r_scores"]) == SCORE_KEYS

    # Retrieved documents can be ingested again (their metadata names the original doc_id).
    assert lc.add_documents(list(by_doc.values())).skipped == 3
    with pytest.raises(InputError, match="wrap a single one in a list"):
        ingest_langchain(r, docs[0])
    with pytest.raises(InputError, match="expected a LangChain Document"):
        ingest_langchain(r, ["just text"])


async def test_aadd_documents(make_retriever):
    lc = M3RetrieverLangChain(retriever=make_retriever(), k=5)
    report = await lc.aadd_documents([LCDocument(page_content="Tea is brewed from leaves.", id="tea")])
    assert report.added == 1
    assert [d.metadata["doc_id"] for d in await lc.ainvoke("tea")] == ["tea"]


def test_found_through_the_plugin_registry(corpus_retriever):
    assert adapter_factories()["langchain"] is make_langchain_retriever
    lc = get_adapter("langchain", corpus_retriever, k=2)
    assert isinstance(lc, M3RetrieverLangChain) and lc.retriever is corpus_retriever
    assert len(lc.invoke("capital")) == 2
    info = {p.name: p for p in list_plugins()}["langchain"]
    assert info.distribution == "m3retriever-langchain"
    assert info.components == {"register_adapters": ("langchain",)}


def test_from_config_uses_the_shared_retriever(tmp_path: Path, tiny_settings: dict, corpus_docs):
    cfg = load_config(env={}, location=str(tmp_path / "shared"), **tiny_settings)
    a = M3RetrieverLangChain.from_config(cfg, k=3)
    try:
        b = M3RetrieverLangChain.from_config(cfg)
        assert a.retriever is b.retriever is Retriever.shared(cfg)
        a.add_documents([LCDocument(page_content=d["text"], id=d["doc_id"]) for d in corpus_docs[:4]])
        assert len(b.invoke("bm25")) == 4 and len(a.invoke("bm25")) == 3
    finally:
        a.retriever.close()


LONG = " ".join(f"Sentence {i} tells of topic {i % 7}, of river {i % 5} and hill {i % 3}." for i in range(40))
"""Many chunks at the tiny settings (48 tokens, 8 of overlap)."""


def test_expanded_passages_and_whole_documents(make_retriever):
    from m3retriever_langchain import CHUNKS_KEY, CONTEXT_KEY

    r = make_retriever(reranker="none")
    r.add_texts([LONG, "A short note about rivers."], ids=["long", "short"], metadatas=[{"lang": "en"}, {}])
    lc = M3RetrieverLangChain(retriever=r, k=4, expand=1)
    docs = lc.invoke("river hill topic")
    hits = r.search("river hill topic", top_k=4, expand=1).hits
    assert [d.id for d in docs] == [h.id for h in hits] and len(docs) == 4
    for d, h in zip(docs, hits):
        ctx = d.metadata[CONTEXT_KEY]
        assert d.page_content == h.context.text
        assert d.page_content != h.text or h.doc_id == "short"  # a long document's passage is longer
        assert d.page_content[ctx["start"] : ctx["end"]] == h.text
        assert [c[0] for c in ctx["chunks"]] == [c.chunk_index for c in h.context.chunks]
    assert all(CONTEXT_KEY not in d.metadata for d in lc.invoke("river hill topic", expand=0))
    # a chain that retrieves passages, then the documents they come from
    parents = (lc | RunnableLambda(lambda found: [lc.get_document(d.metadata["doc_id"]) for d in found])).invoke(
        "river hill topic"
    )
    assert {p.id for p in parents} <= {"long", "short"} and "long" in {p.id for p in parents}
    whole = lc.get_document("long")
    assert whole is not None and whole.page_content == LONG and whole.id == "long"
    assert whole.metadata["doc_id"] == "long" and whole.metadata["lang"] == "en"
    assert whole.metadata[CHUNKS_KEY][0][:2] == [0, 0] and whole.metadata[CHUNKS_KEY][-1][2] == len(LONG)
    assert asyncio.run(lc.aget_document("long")) == whole
    assert lc.get_document("missing") is None
    assert lc.add_documents([whole]).skipped == 1  # the same document: stored unchanged
    with pytest.raises(ValidationError):
        M3RetrieverLangChain(retriever=r, expand=21)
    with pytest.raises(InputError):
        lc.get_document("")
