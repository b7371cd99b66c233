"""A collection's own search defaults: saved (by hand or by ``tune --save``), used by every
retriever that opens the collection, beaten by explicit settings, listed by info, cleared,
and refused with a clear error when corrupted (tiny random models; real embedded stores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import CORPUS
from m3retriever import Retriever, load_config
from m3retriever.errors import ConfigError

SAVED = {"fusion": "dbsf", "rrf_k": 7, "bm25_weight": 0.5, "prefetch_limit": 20, "rerank_depth": 5, "rerank_weight": 0.3}


def _docs() -> list[dict]:
    return [{"doc_id": d, "text": t, "metadata": m} for d, t, m in CORPUS]


def test_saved_defaults_are_used_by_a_fresh_retriever_on_disk(tmp_path, tiny_settings):
    loc = str(tmp_path / "store")
    with Retriever(load_config(env={}, location=loc, **tiny_settings)) as r:
        r.ingest(_docs())
        assert r.save_search_defaults({**SAVED, "query_instruction": "q: "}) == {**SAVED, "query_instruction": "q: "}
        assert r.search_settings().rrf_k == 7  # this retriever uses them at once
    with Retriever(load_config(env={}, location=loc, **tiny_settings)) as r:
        s = r.settings.search
        assert (s.fusion, s.rrf_k, s.bm25_weight, s.prefetch_limit, s.rerank_depth, s.rerank_weight) == (
            "dbsf", 7, 0.5, 20, 5, 0.3
        )
        assert r.settings.query_instruction == "q: "
        assert r.info()["search_defaults"]["rrf_k"] == 7
        assert r.search("capital of France", top_k=3).hits  # the saved settings run
        # per-call options win over the collection's own
        assert r.search_settings(rrf_k=60, fusion="rrf").rrf_k == 60
        assert r.search_settings(fusion="rrf").fusion == "rrf"
        r.clear_search_defaults()
        assert r.info()["search_defaults"] == {} and r.settings.search.fusion == "rrf"
    with Retriever(load_config(env={}, location=loc, **tiny_settings)) as r:
        assert r.search_defaults == {}
        assert r.settings.search.rrf_k == 60 and r.settings.search.prefetch_limit == 100  # profile, field default


def test_explicit_config_wins_over_the_collection_defaults(tmp_path, tiny_settings):
    loc = str(tmp_path / "store")
    with Retriever(load_config(env={}, location=loc, **tiny_settings)) as r:
        r.ingest(_docs()[:2])
        r.save_search_defaults(SAVED)
    explicit = {"fusion": "rrf", "prefetch_limit": 100, "rrf_k": 60}
    with Retriever(load_config(env={}, location=loc, search=explicit, **tiny_settings)) as r:
        s = r.settings.search
        assert (s.fusion, s.prefetch_limit, s.rrf_k) == ("rrf", 100, 60)  # even equal to the built-in defaults
        assert s.rerank_depth == 5  # not set explicitly: the collection's


def test_saved_defaults_in_memory_through_a_shared_client(tiny_settings):
    from qdrant_client import QdrantClient

    client = QdrantClient(location=":memory:")
    cfg = load_config(env={}, location=":memory:", **tiny_settings)
    with Retriever(cfg, client=client) as r:
        r.ingest(_docs()[:3])
        r.save_search_defaults(SAVED)
    with Retriever(cfg, client=client) as r:
        assert r.settings.search.rrf_k == 7 and r.settings.search.fusion == "dbsf"
        assert r.info()["search_defaults"] == SAVED
        r.clear_search_defaults()
    with Retriever(cfg, client=client) as r:
        assert r.search_defaults == {} and r.settings.search.rrf_k == 60


@pytest.mark.parametrize(
    ("key", "value"),
    [("rrf_k", "sixty"), ("rerank_weight", 3.0), ("fusion", "max"), ("top_k", 5), ("query_instruction", 5)],
)
def test_corrupted_saved_values_are_a_clear_error(tmp_path, tiny_settings, key, value):
    loc = tmp_path / "store"
    with Retriever(load_config(env={}, location=str(loc), collection="docs", **tiny_settings)) as r:
        r.ingest(_docs()[:1])
        r.save_search_defaults({"rrf_k": 10})
    meta_path = Path(loc) / "docs.m3r.json"
    meta = json.loads(meta_path.read_text())
    meta["search_defaults"][key] = value
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ConfigError) as err:
        Retriever(load_config(env={}, location=str(loc), collection="docs", **tiny_settings))
    assert "'docs'" in str(err.value) and repr(key) in str(err.value) and f"defaults clear {key}" in str(err.value)


def test_saving_a_bad_value_is_refused(make_retriever):
    r = make_retriever()
    with pytest.raises(ConfigError, match="rerank_depth"):
        r.save_search_defaults({"rerank_depth": 0})
    with pytest.raises(ConfigError, match="rerank"):
        r.save_search_defaults({"rerank": False})
    assert r.search_defaults == {}


def test_cli_tune_save_then_info_then_clear(tmp_path, tiny_settings, capsys):
    pytest.importorskip("ranx")
    from m3retriever.cli import main
    from test_evaluation import write_beir

    root = write_beir(tmp_path / "ds", gz=False)
    cfg = tmp_path / "m3r.toml"
    cfg.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in tiny_settings.items()) + "\n")
    store = str(tmp_path / "store")
    common = ["--config", str(cfg), "--location", store]
    rc = main(["tune", str(root), "--split", "train", *common, "--rrf-k", "7,11", "--prefetch", "10",
               "--rerank-depth", "5", "--rerank-weight", "0,1", "--save"])
    assert rc == 0
    assert "saved with collection" in capsys.readouterr().out
    with Retriever(load_config(cfg, env={}, location=store)) as r:
        own = r.search_defaults
        assert own["fusion"] == "rrf" and own["rrf_k"] in (7, 11) and own["prefetch_limit"] == 10
        assert r.settings.search.rrf_k == own["rrf_k"]
    assert main(["collection", "info", *common, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["search_defaults"] == own
    assert main(["tune", "--clear", *common]) == 0
    capsys.readouterr()
    assert main(["collection", "info", *common, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["search_defaults"] == {}
