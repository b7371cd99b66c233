"""BM25's average document length per tenant: a scoped retriever encodes with its tenant's
own length totals and keeps them, so two tenants of very different document lengths in one
collection score exactly as two collections would; ``renormalize`` recounts a tenant's totals
(scoped) or every tenant's (unscoped, on a partitioned collection). Every test runs on Qdrant
Edge and on qdrant-client's ``:memory:`` mode."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m3retriever import Retriever, load_config, renormalize
from m3retriever.encoders.bm25 import BM25Encoder
from m3retriever.store.kept import length_stats, tenant_length_stats
from m3retriever.types import LengthStats
from maintenance_calls import add_branch_config, renormalize_config

BACKENDS = ["edge", "memory"]

# Disjoint vocabularies; acme writes a few words per document, globex long documents (six to
# nine times longer), so the collection's average fits neither tenant.
VOCAB = {
    "acme": ["kiwi", "mango", "papaya", "guava", "lychee", "quince", "apricot", "plum"],
    "globex": ["granite", "basalt", "marble", "quartz", "schist", "gneiss", "shale", "slate"],
}
FILLER = {"acme": [], "globex": ["feldspar", "obsidian", "pumice", "mica", "tuff", "chalk"] * 4}
PATTERNS = [[0, 1, 2], [0, 3], [1, 4, 5, 6], [2, 2, 7], [3, 5], [0, 6, 7, 1]]
QUERIES = [[1, 2], [5, 0, 4], [7]]


def _docs(tenant: str, patterns: list[list[int]] = PATTERNS, start: int = 0) -> list[dict]:
    words, filler = VOCAB[tenant], FILLER[tenant]
    return [
        {"doc_id": f"d{start + i}", "text": " ".join([words[w] for w in p] + filler[: 3 * (i + start) + 2])}
        for i, p in enumerate(patterns)
    ]


def _query(tenant: str, q: list[int]) -> str:
    return " ".join(VOCAB[tenant][w] for w in q)


def _location(backend: str, tmp_path, name: str) -> str:
    return ":memory:" if backend == "memory" else str(tmp_path / name)


def _ranking(result) -> list[tuple[str, float, float]]:
    """(doc id, BM25 score or -1 where the BM25 branch did not find it, final score), best
    first; equal scores by doc id (the engine breaks ties by point id, and a tenant's point ids
    differ from those of a collection of its own)."""
    hits = sorted(result, key=lambda h: (-h.scores.final, h.doc_id))
    return [(h.doc_id, -1.0 if h.scores.bm25 is None else h.scores.bm25, h.scores.final) for h in hits]


def _assert_same(got: list, expected: list) -> None:
    assert [d for d, _, _ in got] == [d for d, _, _ in expected]
    assert [b for _, b, _ in got] == pytest.approx([b for _, b, _ in expected], rel=1e-5)
    assert [f for _, _, f in got] == pytest.approx([f for _, _, f in expected], rel=1e-5)


def _bm25_only(location: str, **extra) -> Retriever:
    """A retriever with the BM25 branch alone (no model), partitioned by ``tenant``."""
    cfg = load_config(
        env={}, location=location, profile="small", dense_encoder="none", sparse_encoder="none",
        bm25=True, reranker="none", tenant_field="tenant", **extra,
    )  # fmt: skip
    return Retriever(cfg)


def _bm25_vectors(r: Retriever) -> dict[str, object]:
    return {rec.id: rec.vectors["bm25"] for rec in r.store.scroll(r.collection, with_vectors=True)}


@pytest.fixture
def tenant_settings(tiny_settings: dict) -> dict:
    return {**tiny_settings, "bm25": True, "lexical_encoder": "bm25", "tenant_field": "tenant"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_tenants_of_different_lengths_rank_as_separate_collections(backend, tmp_path, make_retriever, tenant_settings):
    """The headline: BM25 and fused scores of each tenant equal those of a collection of its
    own, although the tenants' documents differ in length six to nine times over."""
    shared = make_retriever(location=_location(backend, tmp_path, "shared"), collection="shared", **tenant_settings)
    for tenant in VOCAB:
        shared.scoped(tenant).ingest(_docs(tenant))
    for tenant in VOCAB:
        alone = make_retriever(location=_location(backend, tmp_path, tenant), collection=tenant, **tenant_settings)
        alone.ingest(_docs(tenant))
        for q in QUERIES:
            text = _query(tenant, q)
            _assert_same(_ranking(shared.scoped(tenant).search(text, top_k=6)), _ranking(alone.search(text, top_k=6)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_scoped_ingest_keeps_the_tenants_totals(backend, tmp_path):
    with _bm25_only(_location(backend, tmp_path, "s")) as r:
        acme, globex = r.scoped("acme"), r.scoped("globex")
        acme.ingest(_docs("acme", PATTERNS[:3]))
        globex.ingest(_docs("globex"))
        acme.ingest(_docs("acme", PATTERNS[3:], start=3))
        enc = r.encoders.bm25
        assert isinstance(enc, BM25Encoder)
        own = {t: LengthStats.of(enc.document_lengths([d["text"] for d in _docs(t)])) for t in VOCAB}
        assert tenant_length_stats(r.store, r.collection) == {t: {"bm25": own[t]} for t in VOCAB}
        # The collection's totals count every chunk, as before.
        assert length_stats(r.store, r.collection) == {"bm25": own["acme"] + own["globex"]}
        # Rewritten and deleted chunks stay counted, as in the collection's totals.
        acme.ingest([{"doc_id": "d0", "text": "kiwi kiwi kiwi kiwi"}])
        acme.delete(["d1"])
        grown = own["acme"] + LengthStats(4, 1)
        assert tenant_length_stats(r.store, r.collection)["acme"] == {"bm25": grown}
        report = renormalize(acme.opened)
        assert report.tenant == "acme" and report.chunks == len(PATTERNS) - 1
        assert report.before == {"bm25": grown} and report.after == tenant_length_stats(r.store, r.collection)["acme"]
        assert report.after["bm25"].count == len(PATTERNS) - 1
        # A scoped run leaves the collection's totals alone.
        assert length_stats(r.store, r.collection) == {"bm25": own["acme"] + own["globex"] + LengthStats(4, 1)}


@pytest.mark.parametrize("backend", ["memory"])  # Edge: test_scoped_ingest_keeps_the_tenants_totals
def test_scoped_renormalize_uses_the_tenants_exact_average(backend, tmp_path):
    """Ingested in two batches (short documents first), a tenant's chunks carry two
    averages; a scoped renormalize rewrites them with the tenant's exact average, as
    renormalizing a collection of its own does, and leaves the other tenant's chunks alone."""
    with _bm25_only(_location(backend, tmp_path, "s"), collection="s") as shared, _bm25_only(
        _location(backend, tmp_path, "a"), collection="a"
    ) as alone:
        acme, globex = shared.scoped("acme"), shared.scoped("globex")
        for batch in (_docs("globex", PATTERNS[:2]), _docs("globex", PATTERNS[2:], start=2)):
            alone.ingest(batch)
            globex.ingest(batch)
        acme.ingest(_docs("acme"))
        before = {t: _ranking(shared.scoped(t).search(_query(t, [0, 1]), top_k=6)) for t in VOCAB}
        kept = _bm25_vectors(shared)
        assert renormalize(globex.opened).chunks == len(PATTERNS) and renormalize(alone.opened).chunks == len(PATTERNS)
        got = _ranking(globex.search(_query("globex", [0, 1]), top_k=6))
        _assert_same(got, _ranking(alone.search(_query("globex", [0, 1]), top_k=6)))
        assert got != before["globex"]  # the drift is gone
        assert _ranking(acme.search(_query("acme", [0, 1]), top_k=6)) == before["acme"]
        after = _bm25_vectors(shared)
        acme_ids = {rec.id for rec in shared.store.scroll("s", acme.scope.filter)}
        assert len(acme_ids) == len(PATTERNS) and all(after[i] == kept[i] for i in acme_ids)
        assert any(after[i] != kept[i] for i in set(kept) - acme_ids)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unscoped_renormalize_gives_each_tenant_its_own_average(backend, tmp_path):
    """Without a scope, on a partitioned collection: each tenant's chunks get the tenant's
    exact average, a chunk of no tenant the collection's, and every total is recounted."""
    with _bm25_only(_location(backend, tmp_path, "s"), collection="s") as shared:
        for tenant in VOCAB:
            shared.scoped(tenant).ingest(_docs(tenant, PATTERNS[:2]))
            shared.scoped(tenant).ingest(_docs(tenant, PATTERNS[2:], start=2))
        shared.ingest([{"doc_id": "loose", "text": "kiwi granite slate"}])  # no tenant
        report = renormalize(shared.opened)
        enc = shared.encoders.bm25
        assert isinstance(enc, BM25Encoder)
        own = {t: LengthStats.of(enc.document_lengths([d["text"] for d in _docs(t)])) for t in VOCAB}
        everything = own["acme"] + own["globex"] + LengthStats(3, 1)
        assert report.tenant is None and report.chunks == 2 * len(PATTERNS) + 1
        assert report.tenants == {t: {"bm25": own[t]} for t in VOCAB} == tenant_length_stats(shared.store, "s")
        assert report.after == {"bm25": everything} == length_stats(shared.store, "s")
        (loose,) = [rec for rec in shared.store.scroll("s", with_vectors=True) if rec.payload["doc_id"] == "loose"]
        expected = enc.encode_document_normalized([loose.payload["text"]], everything, include_texts=False)[0]
        stored, wanted = loose.vectors["bm25"], expected.sparse[0]
        assert stored.indices == wanted.indices and stored.values == pytest.approx(wanted.values, rel=1e-6)
        for tenant in VOCAB:
            with _bm25_only(_location(backend, tmp_path, tenant), collection=tenant) as alone:
                alone.ingest(_docs(tenant))  # one batch: its exact average
                for q in QUERIES:
                    text = _query(tenant, q)
                    _assert_same(
                        _ranking(shared.scoped(tenant).search(text, top_k=6)), _ranking(alone.search(text, top_k=6))
                    )


def test_renormalize_command_with_a_tenant(tmp_path, capsys):
    from m3retriever.cli import main

    location = str(tmp_path / "store")
    with _bm25_only(location) as r:
        r.scoped("acme").ingest(_docs("acme", PATTERNS[:1]))
        r.scoped("acme").ingest(_docs("acme", PATTERNS[1:2], start=1))
        r.scoped("globex").ingest(_docs("globex", PATTERNS[:1]))
    args = ["--location", location, "--profile", "small", "--tenant-field", "tenant"]
    env = {"M3R_DENSE_ENCODER": "none", "M3R_SPARSE_ENCODER": "none", "M3R_RERANKER": "none", "M3R_BM25": "true"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        assert main(["collection", "renormalize", *args, "--tenant", "acme"]) == 0
        out = capsys.readouterr().out
        assert "tenant 'acme' bm25: average 2.50 terms over 2 chunks" in out and "rewrote 2 chunks" in out
        assert main(["collection", "renormalize", *args]) == 0
        out = capsys.readouterr().out
        assert "2 tenants' chunks rewritten with their own tenant's average" in out and "rewrote 3 chunks" in out


words = {t: st.lists(st.sampled_from(VOCAB[t]), min_size=1, max_size=40) for t in VOCAB}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    acme=st.lists(words["acme"], min_size=1, max_size=6),
    globex=st.lists(words["globex"], min_size=1, max_size=6),
    split=st.integers(0, 6),
    query=st.lists(st.integers(0, 7), min_size=1, max_size=3),
)
def test_random_tenants_score_as_separate_collections(acme, globex, split, query):
    """Whatever the tenants' documents, their lengths and how a tenant's ingest is split into
    calls (the other tenant writing in between), each tenant's BM25 scores are those of a
    collection of its own ingested the same way."""
    docs = {t: [{"doc_id": f"d{i}", "text": " ".join(d)} for i, d in enumerate(ws)] for t, ws in (("acme", acme), ("globex", globex))}
    batches = {"acme": [b for b in (docs["acme"][:split], docs["acme"][split:]) if b], "globex": [docs["globex"]]}
    with _bm25_only(":memory:", collection="s") as shared:  # both backends: the tests above
        shared.scoped("acme").ingest(batches["acme"][0])
        shared.scoped("globex").ingest(docs["globex"])
        for batch in batches["acme"][1:]:
            shared.scoped("acme").ingest(batch)
        for tenant in VOCAB:
            with _bm25_only(":memory:", collection=tenant) as alone:
                for batch in batches[tenant]:
                    alone.ingest(batch)
                text = _query(tenant, query)
                # Every matching document is returned (at most 6); equal scores may come in
                # another order (ties go by point id, which differs between the collections).
                got = _ranking(shared.scoped(tenant).search(text, top_k=6))
                expected = _ranking(alone.search(text, top_k=6))
                assert {d for d, _, _ in got} == {d for d, _, _ in expected}
                assert sorted(b for _, b, _ in got) == pytest.approx(sorted(b for _, b, _ in expected), rel=1e-5)


def test_a_collection_needing_the_upgrade_is_refused_with_a_tenant(tmp_path):
    """The BM25 upgrade rewrites every chunk: asked with a tenant, nothing is rewritten and the
    error says to run it without one."""
    import json
    from dataclasses import replace

    from m3retriever import ConfigError

    location = tmp_path / "store"
    with _bm25_only(str(location)) as r:
        r.scoped("acme").ingest(_docs("acme"))
        kept = _bm25_vectors(r)
        name = r.collection
    meta_path = location / f"{name}.m3r.json"
    meta = json.loads(meta_path.read_text())
    del meta["fingerprint"]["bm25"]["parameters"]  # as an older version recorded it
    meta_path.write_text(json.dumps(meta))
    cfg = load_config(
        env={}, location=str(location), profile="small", dense_encoder="none", sparse_encoder="none",
        bm25=True, reranker="none", tenant_field="tenant", tenant="acme",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="run renormalize without a tenant"):
        renormalize_config(cfg)
    assert json.loads(meta_path.read_text()) == meta  # nothing recorded
    report = renormalize_config(replace(cfg, tenant=None))
    assert report.upgraded and report.tenants.keys() == {"acme"}
    with _bm25_only(str(location)) as r:
        assert _bm25_vectors(r).keys() == kept.keys()


def test_adding_a_dense2_branch_keeps_the_tenants_totals(tmp_path, tiny_bge_m3_path):
    from dataclasses import replace


    with _bm25_only(str(tmp_path / "store")) as r:
        for tenant in VOCAB:
            r.scoped(tenant).ingest(_docs(tenant))
        totals, tenants, cfg = length_stats(r.store, r.collection), tenant_length_stats(r.store, r.collection), r.config
    assert set(tenants) == set(VOCAB)
    cfg = replace(cfg, dense2_encoder="bge-m3", dense2_model=str(tiny_bge_m3_path), device="cpu", max_length=64)
    assert add_branch_config(cfg).copied == 2 * len(PATTERNS)
    with Retriever(cfg) as r:
        assert length_stats(r.store, r.collection) == totals
        assert tenant_length_stats(r.store, r.collection) == tenants
