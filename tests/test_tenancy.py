"""Tenants: a scoped retriever sees, writes and deletes only its tenant's chunks, a caller's
filter cannot widen the scope, and BM25's IDF is computed over the tenant's documents only,
so two tenants in one collection rank exactly as two collections would. Every test runs on
Qdrant Edge and on qdrant-client's ``:memory:`` mode."""

from __future__ import annotations

import pytest

from m3retriever import Config, ConfigError, InputError

BACKENDS = ["edge", "memory"]

# Two tenants with disjoint vocabularies and documents of equal analyzed lengths (word i of a
# text of one tenant is word i of the other's vocabulary), so the collection's average length,
# which is shared, is each tenant's own too and IDF is the only statistic that could differ.
VOCAB = {
    "acme": ["kiwi", "mango", "papaya", "guava", "lychee", "quince", "apricot", "plum"],
    "globex": ["granite", "basalt", "marble", "quartz", "schist", "gneiss", "shale", "slate"],
}
PATTERNS = [[0, 1, 2], [0, 3], [1, 4, 5, 6], [2, 2, 7], [3, 5], [0, 6, 7, 1]]
QUERIES = [[0], [1, 2], [7, 3], [5, 0, 4]]


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
def settings(tiny_settings: dict) -> dict:
    return {**tiny_settings, "bm25": True, "lexical_encoder": "bm25", "tenant_field": "tenant"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_tenants_rank_as_separate_collections(backend, tmp_path, make_retriever, settings):
    shared = make_retriever(location=_location(backend, tmp_path, "shared"), collection="shared", **settings)
    for tenant in VOCAB:
        shared.scoped(tenant).ingest(_docs(tenant))
    for tenant in VOCAB:
        alone = make_retriever(location=_location(backend, tmp_path, tenant), collection=tenant, **settings)
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
def test_scope_cannot_be_widened(backend, tmp_path, make_retriever, settings):
    r = make_retriever(location=_location(backend, tmp_path, "s"), **settings)
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
def test_scoped_ingest_stamps_and_refuses_another_tenant(backend, tmp_path, make_retriever, settings):
    r = make_retriever(location=_location(backend, tmp_path, "s"), **settings)
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


def test_tenant_index_is_marked_on_both_engines(tmp_path, make_retriever, settings):
    from m3retriever.store.edge import EdgeKit
    from m3retriever.store.remote import ClientKit
    from m3retriever.store.schema import CollectionSpec
    from m3retriever.store.translate import Translator

    spec = CollectionSpec(name="c", dense_dim=4, tenant_field="tenant", indexed_fields=("tenant", "lang"))
    for kit in (EdgeKit(), ClientKit()):
        indexes = dict(Translator(kit).collection(spec).indexes)
        assert indexes["metadata.tenant"].is_tenant is True
        assert "metadata.lang" in indexes
    edge = make_retriever(**settings)
    edge.scoped("acme").ingest(_docs("acme"))
    assert "metadata.tenant" in edge.info()["payload_indexes"]
