"""Point ids of a partitioned collection are unambiguous: a tenant holds no control character,
wherever its value comes from (the configuration, ``Retriever.scoped``, the environment, the
CLI, a document's metadata in an unscoped ingest), so tenant ``a``'s document ``b\\x1ec`` and
tenant ``a\\x1eb``'s document ``c`` can no longer be one point (the second ingest used to
overwrite the first tenant's document and report ``updated=1``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m3retriever import Config, ConfigError, InputError, load_config
from m3retriever.cli import main
from m3retriever.ingest import check_unscoped, point_id
from m3retriever.tenancy import Scope
from m3retriever.types import Document

BACKENDS = ["edge", "memory"]
TEXT = "kiwi mango papaya guava"


def _location(backend: str, tmp_path, name: str = "store") -> str:
    return ":memory:" if backend == "memory" else str(tmp_path / name)


@pytest.fixture
def tenant_settings(tiny_settings: dict) -> dict:
    return {**tiny_settings, "reranker": "none", "tenant_field": "tenant"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_colliding_second_tenant_is_refused_and_the_first_document_kept(backend, tmp_path, make_retriever, tenant_settings):
    r = make_retriever(location=_location(backend, tmp_path), **tenant_settings)
    first = r.scoped("a").ingest([{"doc_id": "b\x1ec", "text": TEXT}])
    assert first.added == 1
    stored = {p.id: p.payload for p in r.store.scroll(r.collection)}
    # Before the fix this tenant opened, and its ingest of "c" rewrote tenant a's point,
    # reporting updated=1.
    with pytest.raises(ConfigError, match=r"control character '\\x1e' at position 1"):
        r.scoped("a\x1eb")
    with pytest.raises(ConfigError, match="control character"):
        load_config(env={}, location=_location(backend, tmp_path), tenant="a\x1eb", **tenant_settings)
    with pytest.raises(ConfigError, match="control character"):
        load_config(env={"M3R_TENANT": "a\x1eb"}, location=_location(backend, tmp_path), **tenant_settings)
    # Unscoped, the same point is reached by doc "a\x1eb\x1ec", or the tenant comes in the
    # metadata: both refused before anything is written.
    with pytest.raises(InputError, match=r"document #0: doc_id .*control character '\\x1e'"):
        r.ingest([{"doc_id": "a\x1eb\x1ec", "text": "overwritten"}])
    with pytest.raises(InputError, match="metadata 'tenant'.*control character"):
        r.ingest([{"doc_id": "c", "text": "overwritten", "metadata": {"tenant": "a\x1eb"}}])
    assert {p.id: p.payload for p in r.store.scroll(r.collection)} == stored
    (hit,) = r.scoped("a").search("kiwi", top_k=5)
    assert (hit.doc_id, hit.text, hit.metadata) == ("b\x1ec", TEXT, {"tenant": "a"})


def test_tenants_with_control_characters_are_refused_everywhere():
    for bad in ("a\x1eb", "a\x1fb", "tab\there", "nul\x00", "del\x7f", "c1\x85"):
        with pytest.raises(ConfigError, match="control character"):
            Config(tenant_field="tenant", tenant=bad)
        with pytest.raises(InputError, match="control character"):
            Scope("tenant", bad)
        with pytest.raises(InputError, match="control character"):
            point_id("doc", 0, bad)
    # Printable text of any script stays a valid tenant (existing collections keep their ids).
    for good in ("acme", "a b", "société", "租户-1", "🙂", "a\u200bb"):
        assert Config(tenant_field="tenant", tenant=good).tenant == good
        assert point_id("doc", 0, good) == point_id("doc", 0, Scope("tenant", good).tenant)


def test_the_cli_refuses_such_a_tenant_without_a_traceback(config_file, capsys):
    assert main(["search", "kiwi", "--config", str(config_file), "--tenant-field", "tenant", "--tenant", "a\x1eb"]) == 2
    err = capsys.readouterr().err
    assert "control character" in err and "Traceback" not in err


def test_an_unpartitioned_collection_keeps_any_doc_id(make_retriever, tiny_settings):
    r = make_retriever(**{**tiny_settings, "reranker": "none"})
    assert r.ingest([{"doc_id": "x\x1ey", "text": TEXT, "metadata": {"tenant": "a\x1eb"}}]).added == 1


# -- point_id is injective ---------------------------------------------------------------------
PIECES = st.text(st.sampled_from(["a", "b", "1", "-", "\x1e", "\x1f", "é"]), max_size=6)
DOC_IDS = st.one_of(PIECES, st.text(max_size=8))
TENANTS = st.one_of(st.none(), PIECES.filter(bool), st.text(min_size=1, max_size=8))
KEYS = st.tuples(TENANTS, DOC_IDS, st.integers(min_value=0, max_value=10**6))


def _accepted(key: tuple[str | None, str, int]) -> bool:
    """Whether the library writes ``key``: a tenant the configuration accepts, or, unscoped in
    a partitioned collection, a doc id :func:`check_unscoped` accepts."""
    tenant, doc_id, _ = key
    try:
        if tenant is None:
            check_unscoped(Document(text="x", doc_id=doc_id), "tenant", "doc")
        else:
            Config(tenant_field="tenant", tenant=tenant)
    except (ConfigError, InputError):
        return False
    return True


def _same_string(key: tuple[str | None, str, int]) -> set[tuple[str | None, str, int]]:
    """Every key whose tenant, doc id and chunk index join to the same string as ``key``'s
    (separators ``\\x1e`` after the tenant, ``\\x1f`` before the index): the keys a weaker rule
    would let collide with it."""
    tenant, doc_id, index = key
    joined = (f"{tenant}\x1e" if tenant is not None else "") + f"{doc_id}\x1f{index}"
    out = set()
    for cut in (i for i, c in enumerate(joined) if c == "\x1f"):
        head, tail = joined[:cut], joined[cut + 1 :]
        if not tail.isdigit() or str(int(tail)) != tail:
            continue
        out.add((None, head, int(tail)))
        out.update((head[:s], head[s + 1 :], int(tail)) for s, c in enumerate(head) if c == "\x1e")
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(KEYS, min_size=1, max_size=12, unique=True))
def test_point_id_is_injective_over_accepted_keys(keys):
    candidates = {k for key in keys for k in (key, *_same_string(key))}
    accepted = sorted((k for k in candidates if _accepted(k)), key=repr)
    ids = {point_id(doc_id, index, tenant): (tenant, doc_id, index) for tenant, doc_id, index in accepted}
    assert len(ids) == len(accepted)
