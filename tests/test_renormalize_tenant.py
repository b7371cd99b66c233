"""``renormalize --tenant X`` follows the tenant field recorded with the collection: no
``--tenant-field`` needed (it used to be refused: "tenant='X' needs tenant_field"), and it
rewrites that tenant's chunks only."""

from __future__ import annotations

import pytest

from m3retriever import ConfigError, Retriever, load_config, renormalize
from m3retriever.cli import main
from maintenance_calls import renormalize_config

BM25_ONLY = {"profile": "small", "dense_encoder": "none", "sparse_encoder": "none", "bm25": True, "reranker": "none"}
ENV = {"M3R_DENSE_ENCODER": "none", "M3R_SPARSE_ENCODER": "none", "M3R_RERANKER": "none"}
DOCS = {
    "acme": [{"doc_id": f"a{i}", "text": "kiwi mango " * (i + 1)} for i in range(3)],
    "globex": [{"doc_id": f"g{i}", "text": "granite basalt slate " * (i + 2)} for i in range(5)],
}


def _filled(location: str, tenant_field: str | None = "tenant") -> None:
    """A BM25-only collection with tenants acme (3 chunks) and globex (5), in two batches each
    so the stored averages drift."""
    with Retriever(load_config(env={}, location=location, tenant_field=tenant_field, **BM25_ONLY)) as r:
        for tenant, docs in DOCS.items():
            target = r.scoped(tenant) if tenant_field else r
            target.ingest(docs[:1])
            target.ingest(docs[1:])


def _bm25(location: str) -> dict[str, tuple[str, object]]:
    with Retriever(load_config(env={}, location=location, **BM25_ONLY)) as r:
        return {
            p.id: (p.payload["metadata"].get("tenant"), p.vectors["bm25"])
            for p in r.store.scroll(r.collection, with_vectors=True)
        }


def test_cli_renormalize_tenant_without_tenant_field(tmp_path, capsys, monkeypatch):
    location = str(tmp_path / "store")
    _filled(location)
    before = _bm25(location)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    assert main(["collection", "renormalize", "--location", location, "--profile", "small", "--tenant", "acme"]) == 0
    out = capsys.readouterr().out
    assert "tenant 'acme'" in out and f"rewrote {len(DOCS['acme'])} chunks" in out
    after = _bm25(location)
    changed = {before[pid][0] for pid in before if after[pid] != before[pid]}
    assert changed <= {"acme"}  # globex's vectors untouched
    assert all(after[pid] == before[pid] for pid in before if before[pid][0] == "globex")


def test_renormalize_tenant_follows_the_recorded_field(tmp_path):
    location = str(tmp_path / "store")
    _filled(location)
    cfg = load_config(env={}, location=location, **BM25_ONLY)
    assert cfg.tenant_field is None
    report = renormalize_config(cfg, tenant="globex")
    assert (report.tenant, report.chunks, report.after["bm25"].count) == ("globex", 5, 5)
    with Retriever(cfg) as r:  # an unscoped retriever given the tenant does the same
        assert renormalize(r.opened, tenant="acme").chunks == 3
    with pytest.raises(ConfigError, match="scoped to tenant 'acme'; give one of them"):
        renormalize_config(load_config(env={}, location=location, tenant_field="tenant", tenant="acme", **BM25_ONLY), tenant="globex")
    with pytest.raises(ConfigError, match="control character"):
        renormalize_config(cfg, tenant="ac\x1eme")


def test_renormalize_tenant_on_an_unpartitioned_collection_is_a_clear_error(tmp_path, capsys, monkeypatch):
    location = str(tmp_path / "store")
    _filled(location, tenant_field=None)
    with pytest.raises(ConfigError, match="records no tenant field.*--tenant-field"):
        renormalize_config(load_config(env={}, location=location, **BM25_ONLY), tenant="acme")
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    assert main(["collection", "renormalize", "--location", location, "--profile", "small", "--tenant", "acme"]) == 2
    err = capsys.readouterr().err
    assert "records no tenant field" in err and "Traceback" not in err
