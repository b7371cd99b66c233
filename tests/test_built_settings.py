"""A collection knows how it was built: opening it takes its profile and encoder settings from
what it keeps (explicit > collection > profile > default), a conflicting explicit choice is a
FingerprintMismatchError naming the setting, and ``info`` says where each setting comes from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m3retriever import Config, Retriever, load_config, resolve
from m3retriever.cli import main
from m3retriever.config.built import infer_profile, load_built
from m3retriever.config.profiles import get_profile
from m3retriever.config.resolution import BUILT, sources
from m3retriever.errors import ConfigError, FingerprintMismatchError
from maintenance_calls import renormalize_config

# -- resolution alone (no store, no model) ----------------------------------------------------


def test_an_unnamed_profile_is_the_collections_else_bge_m3():
    assert resolve(Config()).profile == "bge-m3"
    small = resolve(Config(), built={"profile": "small"})
    expected = ("small", "onnx-dense", get_profile("small").get("search.rrf_k"))
    assert (small.profile, small.dense_encoder, small.search.rrf_k) == expected
    assert small.search.rrf_k != resolve(Config()).search.rrf_k  # the small profile's own, not bge-m3's
    kept = resolve(Config(), built={"profile": "bge-m3", "dense_model": "/models/m3", "sparse_model": "/models/m3"})
    assert (kept.dense_model, kept.sparse_model) == ("/models/m3", "/models/m3")


def test_a_named_profile_takes_nothing_from_a_collection_built_with_another():
    built = {"profile": "small", "dense_encoder": "onnx-dense", "bm25": True}
    c = resolve(Config(profile="bge-m3"), built=built)
    assert (c.dense_encoder, c.bm25) == ("bge-m3", False)
    same = resolve(Config(profile="small"), built={**built, "dense_model": "/m"})
    assert same.dense_model == "/m"


def test_a_kept_model_follows_its_encoder():
    built = {"profile": "bge-m3", "dense_encoder": "bge-m3", "dense_model": "/models/m3"}
    c = resolve(Config(dense_encoder="st-dense"), built=built)
    assert (c.dense_encoder, c.dense_model) == ("st-dense", None)


def test_an_unknown_kept_profile_is_a_clear_error():
    with pytest.raises(ConfigError, match="built with profile 'gone'.*--profile"):
        resolve(Config(collection="docs"), built={"profile": "gone"})


def test_sources_name_where_each_setting_comes_from():
    config = Config(batch_size=4, search=Config().search.__class__(rrf_k=9))
    where = sources(config, saved={"fusion": "dbsf"}, built={"profile": "small", "dense_model": "/m"})
    assert where["profile"] == "collection" and where["dense_model"] == "collection"
    assert where["search.fusion"] == "collection" and where["search.rrf_k"] == "explicit"
    assert where["batch_size"] == "explicit" and where["max_length"] == "default"
    assert where["search.bm25_weight"] == "profile" and where["search.prefetch_limit"] == "default"
    assert where["reranker"] == "profile"
    assert sources(Config())["profile"] == "default"


_VALUES = {
    "dense_encoder": st.sampled_from(["bge-m3", "onnx-dense", "none"]),
    "dense_model": st.sampled_from(["/a", "/b"]),
    "sparse_encoder": st.sampled_from(["bge-m3", "splade", "none"]),
    "sparse_model": st.sampled_from(["/c", "/d"]),
    "bm25": st.booleans(),
    "lexical_encoder": st.sampled_from(["bm25", "none"]),
    "dims": st.sampled_from([256, 512]),
    "distance": st.sampled_from(["cosine", "dot"]),
}


@given(
    mine=st.fixed_dictionaries({}, optional=_VALUES),
    theirs=st.fixed_dictionaries({}, optional=_VALUES),
    profile=st.sampled_from([None, "small", "bge-m3"]),
    built_profile=st.sampled_from(["small", "bge-m3"]),
)
def test_explicit_settings_always_win_and_sources_agree(mine, theirs, profile, built_profile):
    config = Config(profile=profile, **mine)
    resolved = resolve(config, built={"profile": built_profile, **theirs})
    where = sources(config, built={"profile": built_profile, **theirs})
    for name in BUILT:
        if name in mine:
            assert where[name] == "explicit"
        expected = mine.get(name, theirs.get(name) if where[name] == "collection" else None)
        if expected is not None and name != "bm25":  # lexical_encoder "none" turns bm25 off
            assert getattr(resolved, name) == expected
    assert resolved.profile == (profile or built_profile)


def test_old_collections_get_their_profile_from_the_encoder_names():
    small = {"dense": {"name": "onnx-dense"}, "sparse": {"name": "splade"}, "bm25": {"name": "bm25"}}
    assert infer_profile(small) == "small"
    assert infer_profile({"dense": {"name": "bge-m3"}, "sparse": {"name": "bge-m3"}, "bm25": None}) == "bge-m3"
    assert infer_profile({"dense": {"name": "st-dense"}, "sparse": None, "bm25": None}) is None


# -- a real collection, on disk and through the CLI -----------------------------------------


@pytest.fixture
def built(tmp_path: Path, tiny_settings: dict, corpus_docs: list[dict]) -> dict:
    """An embedded collection built with the tiny models; what reopening it needs besides."""
    cfg = load_config(env={}, location=str(tmp_path / "store"), collection="docs", **tiny_settings)
    with Retriever(cfg) as r:
        r.ingest(corpus_docs)
        hits = [h.doc_id for h in r.search("capital of France", rerank=False)]
    rest = {k: v for k, v in tiny_settings.items() if k not in ("profile", "dense_model")}
    return {"location": str(tmp_path / "store"), "collection": "docs", "rest": rest, "hits": hits, "tiny": tiny_settings}


def test_reopening_without_the_profile_uses_the_collections_settings(built):
    cfg = load_config(env={}, location=built["location"], collection="docs", **built["rest"])
    assert cfg.profile is None and cfg.dense_model is None
    with Retriever(cfg) as r:
        assert r.settings.profile == "bge-m3" and r.settings.dense_model == built["tiny"]["dense_model"]
        assert [h.doc_id for h in r.search("capital of France", rerank=False)] == built["hits"]
        info = r.info()["settings"]
    assert info["profile"] == {"value": "bge-m3", "source": "collection"}
    assert info["dense_model"] == {"value": built["tiny"]["dense_model"], "source": "collection"}
    assert info["reranker_model"]["source"] == "explicit" and info["reranker"]["source"] == "profile"
    assert info["search.top_k"]["source"] == "default"


def test_a_conflicting_explicit_choice_names_the_setting(built):
    cfg = load_config(env={}, location=built["location"], collection="docs", sparse_encoder="none", **built["rest"])
    with pytest.raises(FingerprintMismatchError, match=r"sparse\.name: built with 'bge-m3', configured '\(unset\)'"):
        Retriever(cfg)


def test_naming_another_profile_says_which_the_collection_was_built_with(built):
    cfg = load_config(env={}, location=built["location"], collection="docs", profile="small", reranker="none", device="cpu")
    with pytest.raises(FingerprintMismatchError, match=r"dense\.name: built with 'bge-m3'.*profile: built with 'bge-m3', configured 'small'"):
        Retriever(cfg)


def test_a_collection_built_before_settings_were_kept_still_opens(built):
    with Retriever(load_config(env={}, location=built["location"], collection="docs", **built["tiny"])) as r:
        assert load_built(r.store, "docs")["dense_model"] == built["tiny"]["dense_model"]
        r.store.set_metadata("docs", {"settings": None})  # as an older version left it
        assert load_built(r.store, "docs") == {"profile": "bge-m3"}  # inferred from the fingerprint
    cfg = load_config(env={}, location=built["location"], collection="docs", **built["rest"])
    with pytest.raises(FingerprintMismatchError, match=r"dense\.model"):
        Retriever(cfg)  # its model is not kept: the profile's is not the one it was built with
    with_model = load_config(
        env={}, location=built["location"], collection="docs", dense_model=built["tiny"]["dense_model"], **built["rest"]
    )
    with Retriever(with_model) as r:
        assert r.settings.profile == "bge-m3"
        assert r.info()["settings"]["profile"]["source"] == "collection"


def test_cli_info_shows_the_settings_and_their_sources(built, tmp_path, capsys):
    conf = tmp_path / "open.toml"
    lines = [f"location = {json.dumps(built['location'])}", 'collection = "docs"']
    conf.write_text("\n".join(lines + [f"{k} = {json.dumps(v)}" for k, v in built["rest"].items()]) + "\n")
    assert main(["collection", "info", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "settings in force" in out
    rows = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.startswith("  ")}
    assert rows["profile"] == rows["dense_model"] == "collection"
    assert rows["device"] == "explicit" and rows["search.fusion"] == "default"
    assert main(["search", "capital of France", "--config", str(conf), "--no-rerank", "--json"]) == 0
    assert [h["doc_id"] for h in json.loads(capsys.readouterr().out)["hits"]] == built["hits"]


def test_build_settings_on_qdrant_client_memory(tiny_settings, corpus_docs):
    from qdrant_client import QdrantClient

    client = QdrantClient(location=":memory:")
    rest = {k: v for k, v in tiny_settings.items() if k not in ("profile", "dense_model")}
    with Retriever(load_config(env={}, location=":memory:", collection="docs", **tiny_settings), client=client) as r:
        r.ingest(corpus_docs[:3])
        assert r.store.metadata("docs")["settings"]["dense_model"] == tiny_settings["dense_model"]
    with Retriever(load_config(env={}, location=":memory:", collection="docs", **rest), client=client) as r:
        assert r.settings.dense_model == tiny_settings["dense_model"] and r.count() > 0
        assert r.info()["settings"]["profile"]["source"] == "collection"


def test_an_adapter_opens_the_collection_without_the_profile(built):
    pytest.importorskip("langchain_core")
    from m3retriever_langchain.retriever import M3RetrieverLangChain

    cfg = load_config(env={}, location=built["location"], collection="docs", **built["rest"])
    lc = M3RetrieverLangChain.from_config(cfg, k=3, search_options={"rerank": False})
    try:
        assert lc.retriever.settings.profile == "bge-m3"
        docs = lc.invoke("capital of France")
        assert [d.metadata["doc_id"] for d in docs] == built["hits"][:3]
    finally:
        lc.retriever.close()



def test_renormalize_without_the_profile_uses_the_collections_settings(tmp_path, tiny_settings, corpus_docs):
    """``renormalize`` given a configuration opens the collection as a Retriever does: the
    encoders it was built with follow it (here the tiny model, which the profile does not name)."""

    place = {"location": str(tmp_path / "store"), "collection": "docs"}
    with Retriever(load_config(env={}, **place, **tiny_settings, bm25=True)) as r:
        r.ingest(corpus_docs)
        hits = [h.doc_id for h in r.search("capital of France", rerank=False)]
    rest = {k: v for k, v in tiny_settings.items() if k not in ("profile", "dense_model")}
    cfg = load_config(env={}, **place, **rest)
    assert cfg.dense_model is None and cfg.bm25 is None
    report = renormalize_config(cfg)
    with Retriever(cfg) as r:
        assert report.chunks == r.count() > 0
        assert [h.doc_id for h in r.search("capital of France", rerank=False)] == hits
