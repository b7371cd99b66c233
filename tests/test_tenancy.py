"""Tenants: a scoped retriever sees, writes and deletes only its tenant's chunks, a caller's
filter cannot widen the scope, and BM25's IDF is computed over the tenant's documents only,
so two tenants in one collection rank exactly as two collections would. Every test runs on
Qdrant Edge and on qdrant-client's ``:memory:`` mode."""

from __future__ import annotations

import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m3retriever import Config, ConfigError, InputError
from m3retriever.filters import And, AnyOf, Eq, Not
from m3retriever.tenancy import Scope
from m3retriever.validation import check_metadata
from maintenance_calls import renormalize_config
from test_congruence import _ids, _load, leaf, metadata, reference

BACKENDS = ["edge", "memory"]

# Two tenants with disjoint vocabularies and documents of equal analyzed lengths (word i of a
# text of one tenant is word i of the other's vocabulary), so the collection's average length
# is each tenant's own too and IDF is the only statistic that differs between the tenant's and
# the collection's (tenants of different lengths: test_tenant_lengths.py).
VOCAB = {
    "acme": ["kiwi", "mango", "papaya", "guava", "lychee", "quince", "apricot", "plum"],
    "globex": ["granite", "basalt", "marble", "quartz", "schist", "gneiss", "shale", "slate"],
}
PATTERNS = [[0, 1, 2], [0, 3], [1, 4, 5, 6], [2, 2, 7], [3, 5], [0, 6, 7, 1]]
QUERIES = [[1, 2], [5, 0, 4]]


def _docs(tenant: str) -> list[dict]:
    words = VOCAB[tenant]
    return [{"doc_id": f"d{i}", "text": " ".join(words[w] for w in p)} for i, p in enumerate(PATTERNS)]


def _query(tenant: str, q: list[int]) -> str:
    return " ".join(VOCAB[tenant][w] for w in q)


def _location(backend: str, tmp_path, name: str) -> str:
    return ":memory:" if backend == "memory" else str(tmp_path / name)


def _ranking(result) -> list[tuple[str, float, float]]:
    """(doc id, BM25 score or -1 where the BM25 branch did not find it, final score)."""
    return [(h.doc_id, -1.0 if h.scores.bm25 is None else h.scores.bm25, h.scores.final) for h in result]


@pytest.fixture
def tenant_settings(tiny_settings: dict) -> dict:
    return {**tiny_settings, "bm25": True, "lexical_encoder": "bm25", "tenant_field": "tenant"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_tenants_rank_as_separate_collections(backend, tmp_path, make_retriever, tenant_settings):
    shared = make_retriever(location=_location(backend, tmp_path, "shared"), collection="shared", **tenant_settings)
    for tenant in VOCAB:
        shared.scoped(tenant).ingest(_docs(tenant))
    for tenant in VOCAB:
        alone = make_retriever(location=_location(backend, tmp_path, tenant), collection=tenant, **tenant_settings)
        alone.ingest(_docs(tenant))
        scoped = shared.scoped(tenant)
        unscoped_idf = 0
        for q in QUERIES:
            text = _query(tenant, q)
            expected = _ranking(alone.search(text, top_k=6))
            got = _ranking(scoped.search(text, top_k=6))
            assert [d for d, _, _ in got] == [d for d, _, _ in expected]
            assert [b for _, b, _ in got] == pytest.approx([b for _, b, _ in expected], rel=1e-5)
            assert [f for _, _, f in got] == pytest.approx([f for _, _, f in expected], rel=1e-5)
            # The same tenant filter without the scope's IDF corpus: collection-wide IDF.
            plain = _ranking(shared.search(text, top_k=6, filter={"tenant": tenant}))
            unscoped_idf += any(abs(b - e) > 1e-4 for (_, b, _), (_, e, _) in zip(plain, expected))
        assert unscoped_idf == len(QUERIES), "collection-wide IDF should differ from the tenant's own"


@pytest.mark.parametrize("backend", BACKENDS)
def test_scope_cannot_be_widened(backend, tmp_path, make_retriever, tenant_settings):
    r = make_retriever(location=_location(backend, tmp_path, "s"), **tenant_settings)
    acme, globex = r.scoped("acme"), r.scoped("globex")
    acme.ingest(_docs("acme"))
    globex.ingest(_docs("globex"))
    # Same doc ids in both tenants: nothing was overwritten.
    assert r.count() == 2 * len(PATTERNS) and acme.count() == globex.count() == len(PATTERNS)
    text = _query("globex", [0, 1])
    assert {h.metadata["tenant"] for h in acme.search(text, top_k=12)} == {"acme"}
    # A caller's filter naming the other tenant is ANDed with the scope: nothing comes back.
    assert list(acme.search(text, filter={"tenant": "globex"})) == []
    assert list(acme.search(text, filter={"tenant": {"any": ["acme", "globex"]}, "doc_id": "d1"})) != []
    assert acme.count({"tenant": "globex"}) == 0
    # Deletes stay inside the tenant.
    assert acme.delete(["d0", "d1"]) == 2
    assert globex.count() == len(PATTERNS) and acme.count() == len(PATTERNS) - 2
    assert acme.delete(filter={"tenant": "globex"}) == 0
    assert globex.count() == len(PATTERNS)
    assert r.info()["tenant"] is None and acme.info()["tenant"] == "acme"


@pytest.mark.parametrize("backend", BACKENDS)
def test_scoped_ingest_stamps_and_refuses_another_tenant(backend, tmp_path, make_retriever, tenant_settings):
    r = make_retriever(location=_location(backend, tmp_path, "s"), **tenant_settings)
    acme = r.scoped("acme")
    report = acme.ingest([{"doc_id": "a", "text": "kiwi mango", "metadata": {"tenant": "acme", "k": 1}}])
    assert report.added == 1
    assert acme.ingest([{"doc_id": "a", "text": "kiwi mango", "metadata": {"k": 1}}]).skipped == 1
    with pytest.raises(InputError, match="scoped to tenant 'acme'"):
        acme.ingest([{"doc_id": "b", "text": "kiwi", "metadata": {"tenant": "globex"}}])
    assert r.count() == 1
    (hit,) = acme.search("kiwi", top_k=3)
    assert hit.metadata == {"tenant": "acme", "k": 1}


def test_tenant_settings_are_checked():
    with pytest.raises(ConfigError, match="needs tenant_field"):
        Config(tenant="acme")
    with pytest.raises(ConfigError, match="tenant_field"):
        Config(tenant_field="doc_id")
    with pytest.raises(ConfigError, match="non-blank"):
        Config(tenant_field="tenant", tenant="  ")


def test_tenant_index_is_marked_on_both_engines(tmp_path, make_retriever, tenant_settings):
    from m3retriever.store.edge import EdgeKit
    from m3retriever.store.remote import ClientKit
    from m3retriever.store.schema import CollectionSpec
    from m3retriever.store.translate import Translator

    spec = CollectionSpec(name="c", dense_dim=4, tenant_field="tenant", indexed_fields=("tenant", "lang"))
    for kit in (EdgeKit(), ClientKit()):
        indexes = dict(Translator(kit).collection(spec).indexes)
        assert indexes["metadata.tenant"].is_tenant is True
        assert "metadata.lang" in indexes
    edge = make_retriever(**tenant_settings)
    edge.scoped("acme").ingest(_docs("acme"))
    assert "metadata.tenant" in edge.info()["payload_indexes"]


tenants = st.sampled_from(["acme", "globex", "", "x"])
tenant_leaf = st.one_of(
    st.builds(Eq, st.just("tenant"), tenants),
    st.builds(AnyOf, st.just("tenant"), st.lists(tenants, min_size=1, max_size=3)),
)
caller_filters = st.recursive(
    st.one_of(leaf, tenant_leaf),
    lambda inner: st.one_of(st.builds(Not, inner), st.builds(And, st.lists(inner, min_size=1, max_size=3).map(tuple))),
    max_leaves=6,
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(st.tuples(st.sampled_from(["acme", "globex"]), metadata()), min_size=1, max_size=10),
    flts=st.lists(caller_filters, min_size=4, max_size=8),
)
def test_no_caller_filter_leaves_the_scope(docs, flts):
    """Whatever filter a caller sends, a scope returns exactly its tenant's points matching it,
    on both backends (the documented filter rules in Python are the reference)."""
    docs = [{**check_metadata(md, "test"), "tenant": t} for t, md in docs]
    scope = Scope("tenant", "acme")
    with tempfile.TemporaryDirectory() as tmp:
        edge, memory = _load(tmp, docs), _load(":memory:", docs)
        try:
            for flt in flts:
                expected = [i for i, md in enumerate(docs) if md["tenant"] == "acme" and reference(flt, md)]
                for store in (edge, memory):
                    assert _ids(store, scope.within(flt)) == expected, flt
                    assert store.count("c", scope.within(flt)) == len(expected)
        finally:
            edge.close()
            memory.close()


def _bm25_config(location: str, **extra):
    from m3retriever import load_config

    return load_config(
        env={}, location=location, profile="small", dense_encoder="none", sparse_encoder="none",
        bm25=True, reranker="none", **extra,
    )  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
def test_tenant_index_is_created_on_an_existing_collection(backend, tmp_path, capsys):
    """A collection built before ``tenant_field`` was set gets the tenant index (and the field
    in its description) when a retriever with ``tenant_field`` opens it, once; ``info`` shows
    it. qdrant-client's local mode keeps no payload indexes: ``not kept``."""
    from m3retriever import Retriever, renormalize
    from m3retriever.cli import main

    location = _location(backend, tmp_path, "s")
    before = Retriever(_bm25_config(location, indexed_fields=["tenant"]))
    before.ingest([{**d, "metadata": {"tenant": t}, "doc_id": f"{t}-{d['doc_id']}"} for t in VOCAB for d in _docs(t)])
    info = before.info()
    assert info["tenant_field"] is None and info["tenant_index"] is None
    kept = backend == "edge"
    assert before.store.tenant_index(before.collection, "tenant") == ("keyword" if kept else "not kept")
    assert before.store.stored_spec(before.collection).tenant_field is None
    if kept:
        before.close()  # reopened from disk
    for _ in range(2):  # the second time finds it there
        after = Retriever(_bm25_config(location, tenant_field="tenant"), store=None if kept else before.store)
        info = after.info()
        assert info["tenant_field"] == "tenant" and info["tenant_index"] == ("tenant" if kept else "not kept")
        assert after.store.stored_spec(after.collection).tenant_field == "tenant"
        assert after.scoped("acme").count() == len(PATTERNS)
        if kept:
            assert {"doc_id", "metadata.tenant"} <= set(info["payload_indexes"])
            after.close()
    # The recorded field partitions an unscoped renormalize, even without tenant_field set.
    report = (
        renormalize_config(_bm25_config(location)) if kept else renormalize(Retriever(_bm25_config(location), store=before.store).opened)
    )
    assert set(report.tenants) == set(VOCAB)
    if kept:
        assert main(["collection", "info", "--location", location, "--profile", "small", "--tenant-field", "tenant"]) == 0
        out = capsys.readouterr().out
        assert "\ntenant_field     tenant\n" in out and "\ntenant_index     tenant\n" in out


def test_index_kinds_read_back_from_both_bindings():
    """What each engine reports of a payload index, in the one word ``info`` shows."""
    import qdrant_edge as q
    from qdrant_client import models as m

    from m3retriever.store.translate import index_kind

    tenant = m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=True)
    assert index_kind(m.PayloadSchemaType.KEYWORD, tenant) == "tenant"
    assert index_kind(m.PayloadSchemaType.KEYWORD, None) == "keyword"
    assert index_kind(m.PayloadSchemaType.INTEGER, None) == "integer"
    assert index_kind(q.PayloadSchemaType.Keyword, q.KeywordIndexParams(is_tenant=True)) == "tenant"
    assert index_kind(q.PayloadSchemaType.Keyword, q.KeywordIndexParams(is_tenant=False)) == "keyword"
    assert index_kind(q.PayloadSchemaType.Keyword, None) == "keyword"
