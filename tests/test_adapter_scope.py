"""The LlamaIndex and LangChain retrievers over a tenant-scoped retriever, with the diversity
options: their filters cannot leave the tenant, and ``max_per_doc``/``mmr`` reach the search
(at construction and, for LangChain, per call)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("langchain_core")
pytest.importorskip("m3retriever_llamaindex")
pytest.importorskip("m3retriever_langchain")

from m3retriever import ConfigError  # noqa: E402
from m3retriever_langchain import M3RetrieverLangChain  # noqa: E402
from m3retriever_llamaindex import M3RetrieverLlamaIndex  # noqa: E402

WORDS = "river stone cloud lamp garden mirror violin engine harbor window".split()


@pytest.fixture(scope="module")
def scoped(tmp_path_factory, tiny_settings):
    """A ``:memory:`` collection with two tenants; the retriever scoped to ``acme``."""
    from m3retriever import Retriever, load_config

    r = Retriever(load_config(env={}, location=":memory:", tenant_field="tenant", **tiny_settings))
    long = " ".join(f"Vector search near the {w} with filter {k}." for k, w in enumerate(WORDS))
    acme = r.scoped("acme")
    acme.ingest([{"doc_id": "long", "text": long}] + [{"doc_id": f"n{i}", "text": f"Vector note {i}."} for i in range(4)])
    r.scoped("globex").ingest([{"doc_id": "g", "text": "Vector search near the river."}])
    assert acme.count({"doc_id": "long"}) > 2
    yield acme
    r.close()


def _doc_ids(docs) -> list[str]:
    return [d.metadata["doc_id"] for d in docs]


def test_llamaindex_scope_and_diversity(scoped):
    li = M3RetrieverLlamaIndex(scoped, top_k=5, filter={"tenant": "globex"})
    assert li.retrieve("vector search river") == []
    capped = M3RetrieverLlamaIndex(scoped, top_k=5, max_per_doc=1, mmr=0.3)
    ids = [n.node.metadata["doc_id"] for n in capped.retrieve("vector search river")]
    assert len(ids) == 5 and len(set(ids)) == 5 and "g" not in ids
    with pytest.raises(ConfigError):
        M3RetrieverLlamaIndex(scoped, mmr=2.0)
    with pytest.raises(ConfigError):
        M3RetrieverLlamaIndex(scoped, max_per_doc=0)


def test_langchain_scope_and_diversity(scoped):
    lc = M3RetrieverLangChain(retriever=scoped, k=5)
    assert lc.invoke("vector search river", filter={"tenant": "globex"}) == []
    plain = _doc_ids(lc.invoke("vector search river"))
    assert "g" not in plain and len(set(plain)) < 5  # the long document fills several places
    capped = _doc_ids(lc.invoke("vector search river", max_per_doc=1))
    assert len(capped) == 5 and len(set(capped)) == 5
    fixed = M3RetrieverLangChain(retriever=scoped, k=5, max_per_doc=2, mmr=0.5)
    ids = _doc_ids(fixed.invoke("vector search river"))
    assert max(ids.count(d) for d in ids) <= 2
    assert len(set(_doc_ids(fixed.invoke("vector search river", max_per_doc=1)))) == 5
    with pytest.raises(ValueError):
        M3RetrieverLangChain(retriever=scoped, mmr=1.5)
    with pytest.raises(ConfigError, match="unknown search option"):  # the tenant is no search option
        lc.invoke("vector search river", tenant="globex")
