"""A collection's own search defaults (every savable setting: fusion, weights, depths,
``hnsw_ef``, ``oversampling``, ``rescore``, the query instruction), on Qdrant Edge and
qdrant-client ``:memory:``: saved by hand, by ``tune --save`` or by ``collection defaults set``,
used by every retriever that opens the collection, beaten by explicit settings, shown by
``info`` with where each comes from, cleared, and refused with a clear error when bad on save
or corrupted on load (tiny random models; real stores)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m3retriever import Config, ConfigError, Retriever, SearchConfig, load_config, open_collection
from m3retriever.config.saved import check_saved, parse_saved
from m3retriever.maintenance.defaults import change_defaults
from m3retriever.store.kept import search_defaults, set_search_defaults

NAME = "docs"
SAVED = {
    "fusion": "dbsf",
    "rrf_k": 7,
    "bm25_weight": 0.5,
    "prefetch_limit": 20,
    "rerank_depth": 5,
    "rerank_weight": 0.3,
}
KNOBS = {"oversampling": 4.0, "hnsw_ef": 256, "rescore": False}


class Opener:
    """Retrievers (``opener(**settings)``) and a bare store (``opener.store()``, no models) on
    one collection of one store, Edge or qdrant-client ``:memory:``."""

    def __init__(self, location: str, client: Any, settings: dict[str, Any]) -> None:
        self.location, self.client, self.settings = location, client, settings

    def __call__(self, **more: Any) -> Retriever:
        cfg = load_config(
            env={}, location=self.location, collection=NAME, quantization="scalar", **{**self.settings, **more}
        )
        return Retriever(cfg, client=self.client)

    def store(self) -> Any:
        from m3retriever.store import open_store

        return open_store(self.location, client=self.client)

    def collection(self) -> Any:
        """The collection opened without its saved defaults (as `defaults set/clear` open it)."""
        cfg = Config(location=self.location, collection=NAME)
        return open_collection(cfg, self.client, must_exist=True, with_saved=False)


@pytest.fixture(params=["edge", "memory"])
def opener(request, tmp_path, tiny_settings) -> Opener:
    if request.param == "memory":
        from qdrant_client import QdrantClient

        return Opener(":memory:", QdrantClient(location=":memory:"), tiny_settings)
    return Opener(str(tmp_path / "store"), None, tiny_settings)


# -- used, shown, beaten by explicit settings, cleared ----------------------------------------
def test_saved_defaults_are_used_by_a_fresh_retriever(opener, corpus_docs):
    own = {**SAVED, "query_instruction": "q: "}
    with opener() as r:
        r.ingest(corpus_docs)
        assert r.save_search_defaults(own) == own
        assert r.search_settings().rrf_k == 7  # this retriever uses them at once
    with opener() as r:
        s = r.settings.search
        assert (s.fusion, s.rrf_k, s.bm25_weight, s.prefetch_limit, s.rerank_depth, s.rerank_weight) == (
            "dbsf",
            7,
            0.5,
            20,
            5,
            0.3,
        )
        assert r.settings.query_instruction == "q: "
        assert r.info()["search_defaults"] == own
        assert r.search("capital of France", top_k=3).hits  # the saved settings run
        # per-call options win over the collection's own
        assert r.search_settings(rrf_k=60, fusion="rrf").rrf_k == 60
        assert r.search_settings(fusion="rrf").fusion == "rrf"
        r.clear_search_defaults()
        assert r.info()["search_defaults"] == {} and r.settings.search.fusion == "rrf"
    with opener() as r:
        assert r.search_defaults == {}
        assert r.settings.search.rrf_k == 60 and r.settings.search.prefetch_limit == 100  # profile, field default


def test_saved_knobs_are_used_and_explicit_values_win(opener, corpus_docs):
    with opener() as r:
        r.ingest(corpus_docs[:5])
        default = r.search_settings()
        assert (default.oversampling, default.hnsw_ef, default.rescore) == (2.0, 200, True)  # max(128, 2 x 100)
        assert r.save_search_defaults({**KNOBS, "rrf_k": 7}) == {**KNOBS, "rrf_k": 7}
        s = r.search_settings()  # this retriever uses them at once
        assert (s.oversampling, s.hnsw_ef, s.rescore, s.rrf_k) == (4.0, 256, False, 7)
    with opener() as r:  # a fresh retriever: the collection's own
        s = r.settings.search
        assert (s.oversampling, s.hnsw_ef, s.rescore) == (4.0, 256, False)
        assert r.search("capital of France", top_k=2, rerank=False).hits  # searched with them
        in_force = r.info()["settings"]
        for key, value in KNOBS.items():
            assert in_force["search." + key] == {"value": value, "source": "collection"}
        # a per-call option wins
        assert r.search_settings(hnsw_ef=64, oversampling=1.5).hnsw_ef == 64
        assert r.search_settings(oversampling=1.5).oversampling == 1.5
    with opener(search={"oversampling": 3.0, "rescore": True}) as r:  # so does the configuration
        s = r.settings.search
        assert (s.oversampling, s.rescore, s.hnsw_ef) == (3.0, True, 256)
        in_force = r.info()["settings"]
        assert in_force["search.oversampling"]["source"] == "explicit"
        assert in_force["search.hnsw_ef"]["source"] == "collection"
        r.save_search_defaults({"rrf_k": 7})  # replaces them
    with opener() as r:
        s = r.settings.search
        assert (s.oversampling, s.hnsw_ef, s.rescore) == (2.0, 200, True)
        assert r.info()["settings"]["search.oversampling"]["source"] == "default"


def test_explicit_config_wins_even_when_equal_to_the_built_in_defaults(tmp_path, tiny_settings, corpus_docs):
    edge = Opener(str(tmp_path / "store"), None, tiny_settings)
    with edge() as r:
        r.ingest(corpus_docs[:2])
        r.save_search_defaults(SAVED)
    with edge(search={"fusion": "rrf", "prefetch_limit": 100, "rrf_k": 60}) as r:
        s = r.settings.search
        assert (s.fusion, s.prefetch_limit, s.rrf_k) == ("rrf", 100, 60)  # even equal to the built-in defaults
        assert s.rerank_depth == 5  # not set explicitly: the collection's


# -- bad values: refused when saved, a clear error when loaded --------------------------------
BAD_ON_SAVE = [
    ("oversampling", 0.5),
    ("oversampling", 101),
    ("oversampling", float("inf")),
    ("hnsw_ef", -1),
    ("hnsw_ef", 10**6),
    ("hnsw_ef", 2.5),
    ("rescore", "yes"),
    ("rescore", 1),
    ("oversampling", "four"),
    ("rerank_depth", 0),
    ("rerank", False),
]
BAD_ON_LOAD = [
    ("rrf_k", "sixty"),
    ("rerank_weight", 3.0),
    ("fusion", "max"),
    ("top_k", 5),
    ("query_instruction", 5),
    ("oversampling", 0.9),
    ("rescore", "sometimes"),
    ("hnsw_ef", "many"),
]


def test_bad_values_are_refused_on_save(opener, corpus_docs):
    with opener() as r:
        r.ingest(corpus_docs[:1])
        r.save_search_defaults({"oversampling": 3.0})
        for key, value in BAD_ON_SAVE:
            with pytest.raises(ConfigError, match=f"'{NAME}': saved search default '{key}'"):
                r.save_search_defaults({key: value})
            with pytest.raises(ConfigError, match=key):
                change_defaults(r.opened, {key: value})
            assert search_defaults(r.store, NAME) == {"oversampling": 3.0}  # nothing written
        assert r.search_settings().oversampling == 3.0


def test_bad_values_are_refused_on_load_and_can_be_removed(opener, corpus_docs):
    with opener() as r:
        r.ingest(corpus_docs[:1])
        r.save_search_defaults({"hnsw_ef": 300})
    for key, value in BAD_ON_LOAD:
        store = opener.store()
        try:
            set_search_defaults(store, NAME, {"hnsw_ef": 300, key: value})  # as a hand edit of the record would
        finally:
            store.close()
        with pytest.raises(ConfigError) as err:
            opener()
        assert f"'{NAME}'" in str(err.value) and repr(key) in str(err.value), err.value
        assert f"defaults clear {key}" in str(err.value), err.value
        with opener.collection() as collection:  # what `m3retriever collection defaults clear KEY` runs
            kept = change_defaults(collection, {}, remove=(key,))
        assert kept == ({"hnsw_ef": 300} if key != "hnsw_ef" else {})
    with opener() as r:
        assert r.settings.search.hnsw_ef == 200 and r.search_defaults == {}


def test_clear_all_removes_a_corrupted_record(opener, corpus_docs):
    with opener() as r:
        r.ingest(corpus_docs[:1])
        set_search_defaults(r.store, NAME, {"mystery": 1, "oversampling": 2.5})
    with opener.collection() as collection:
        with pytest.raises(ConfigError, match="'mystery' is not a setting"):
            change_defaults(collection, {"hnsw_ef": 300})
        assert change_defaults(collection, {}, remove=("mystery",)) == {"oversampling": 2.5}


_FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10, 1000)


@settings(max_examples=80, deadline=None)
@given(
    oversampling=_FLOATS,
    hnsw_ef=st.integers(-5, 200_000),
    rescore=st.sampled_from(["true", "false", "yes", "off", "1", "maybe", ""]),
)
def test_saved_values_are_accepted_exactly_when_the_setting_is(oversampling, hnsw_ef, rescore):
    """Typed (Python) and textual (command line) values: a collection keeps a value exactly
    when ``SearchConfig`` accepts it, and keeps what ``SearchConfig`` makes of it."""
    for key, value in (("oversampling", oversampling), ("hnsw_ef", hnsw_ef)):
        try:
            expected = getattr(SearchConfig(**{key: value}), key)
        except ConfigError:
            with pytest.raises(ConfigError, match=key):
                check_saved("c", {key: value})
            with pytest.raises(ConfigError, match=key):
                parse_saved("c", {key: repr(value)})
            continue
        kept = check_saved("c", {key: value})
        assert kept == ({} if expected is None else {key: expected})  # hnsw_ef 0: the default, nothing kept
        text = parse_saved("c", {key: repr(value)})
        assert text == {key: value} and (key != "oversampling" or math.isfinite(float(value)))
    ok = rescore.lower() in ("true", "false", "yes", "off", "1")
    if ok:
        assert parse_saved("c", {"rescore": rescore})["rescore"] is (rescore.lower() in ("true", "yes", "1"))
    else:
        with pytest.raises(ConfigError, match="rescore"):
            parse_saved("c", {"rescore": rescore})


# -- tune --save ------------------------------------------------------------------------------
def test_tune_save_keeps_the_knobs_it_does_not_tune(tiny_settings, corpus_docs):
    pytest.importorskip("ranx")
    from qdrant_client import QdrantClient

    from m3retriever.evaluation.tune import tune

    with Opener(":memory:", QdrantClient(location=":memory:"), tiny_settings)() as r:  # one backend: tune's own logic
        r.ingest(corpus_docs)
        r.save_search_defaults({**KNOBS, "rrf_k": 99, "query_instruction": "q: "})
        queries = {"q1": "capital of France", "q2": "loyal animals"}
        qrels = {"q1": {"paris": 1}, "q2": {"dog": 1}}
        tune(
            r,
            queries,
            qrels,
            rrf_ks=[5],
            prefetch_limits=[10],
            rerank_depths=[5],
            rerank_weights=[1.0],
            latency_queries=0,
            verify=False,
            save=True,
        )
        own = r.search_defaults
    assert {k: own[k] for k in KNOBS} == KNOBS and own["query_instruction"] == "q: "
    assert own["rrf_k"] == 5 and own["prefetch_limit"] == 10  # what tune decides is replaced


# -- the command line: `tune --save`/`--clear` and `collection defaults` ----------------------
def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from m3retriever.cli import main

    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _error(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    rc, _, err = _run(argv, capsys)
    assert rc == 2 and err.startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def _saved_by_info(common: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    rc, out, _ = _run(["collection", "info", "--json", *common], capsys)
    assert rc == 0
    return json.loads(out)["search_defaults"]


def test_cli_tune_save_then_info_then_clear(config_file, tmp_path, capsys):
    pytest.importorskip("ranx")
    from test_evaluation import write_beir

    root = write_beir(tmp_path / "ds", gz=False)
    common = ["--config", str(config_file)]
    rc, out, _ = _run(
        [
            "tune",
            str(root),
            "--split",
            "train",
            *common,
            "--rrf-k",
            "7,11",
            "--prefetch",
            "10",
            "--rerank-depth",
            "5",
            "--rerank-weight",
            "0,1",
            "--save",
        ],
        capsys,
    )
    assert rc == 0 and "saved with collection" in out
    with Retriever(load_config(config_file, env={})) as r:
        own = r.search_defaults
        assert own["fusion"] == "rrf" and own["rrf_k"] in (7, 11) and own["prefetch_limit"] == 10
        assert r.settings.search.rrf_k == own["rrf_k"]
    assert _saved_by_info(common, capsys) == own
    assert _run(["tune", "--clear", *common], capsys)[0] == 0
    assert _saved_by_info(common, capsys) == {}


def test_cli_defaults_set_show_clear(config_file, tmp_path, corpus_docs, capsys):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"doc_id": d["doc_id"], "text": d["text"]}) + "\n" for d in corpus_docs[:4]))
    common = ["--config", str(config_file)]
    _error(["collection", "defaults", "set", "oversampling=4", *common], capsys, "no collection 'cli' at")
    assert _run(["ingest", str(corpus), "--quiet", "--quantization", "scalar", *common], capsys)[0] == 0
    rc, out, _ = _run(
        ["collection", "defaults", "set", "oversampling=4", "search.hnsw_ef=256", "rescore=false", "rrf_k=7", *common],
        capsys,
    )
    assert rc == 0 and json.loads(out.split("keeps: ", 1)[1]) == {**KNOBS, "rrf_k": 7}
    rc, out, _ = _run(["collection", "info", "--json", *common], capsys)
    in_force = json.loads(out)["settings"]
    assert in_force["search.oversampling"] == {"value": 4.0, "source": "collection"}
    assert in_force["search.rescore"] == {"value": False, "source": "collection"}
    rc, out, _ = _run(["collection", "info", *common], capsys)
    assert any(
        line.split()[:1] == ["search.hnsw_ef"] and line.split()[1:] == ["256", "collection"]
        for line in out.splitlines()
    )
    # bad input: clean errors, nothing changed
    _error(
        ["collection", "defaults", "set", "oversampling=0.5", *common], capsys, "'oversampling'", "between 1 and 100"
    )
    _error(["collection", "defaults", "set", "hnsw_ef=lots", *common], capsys, "hnsw_ef")
    _error(
        ["collection", "defaults", "set", "top_k=5", *common], capsys, "'top_k' is not a setting a collection can keep"
    )
    _error(["collection", "defaults", "set", "oversampling", *common], capsys, "expected KEY=VALUE")
    _error(
        ["collection", "defaults", "clear", "top_k", *common],
        capsys,
        "['top_k'] are not settings a collection can keep",
    )
    with pytest.MonkeyPatch.context() as mp:  # defaults take no --tenant: a configured one is refused
        mp.setenv("M3R_TENANT", "a")
        mp.setenv("M3R_TENANT_FIELD", "t")
        _error(["collection", "defaults", "show", *common], capsys, "all its tenants")
    rc, out, _ = _run(["collection", "defaults", "show", "--json", *common], capsys)
    shown = json.loads(out)
    assert shown["saved"] == {**KNOBS, "rrf_k": 7}
    assert shown["in_force"]["oversampling"] == {"value": 4.0, "source": "collection"}
    assert shown["in_force"]["rerank_depth"]["source"] in ("profile", "default")
    # hnsw_ef=0 means the default: it removes the saved one; clear KEY removes one, clear all
    rc, out, _ = _run(["collection", "defaults", "set", "hnsw_ef=0", *common], capsys)
    assert rc == 0 and "hnsw_ef" not in out
    assert _run(["collection", "defaults", "clear", "rrf_k", *common], capsys)[0] == 0
    with Retriever(load_config(config_file, env={})) as r:
        assert r.search_defaults == {"oversampling": 4.0, "rescore": False}
        assert r.settings.search.hnsw_ef == 200 and r.settings.search.oversampling == 4.0
        # a hand-edited value stops the collection from opening...
        set_search_defaults(r.store, "cli", {"oversampling": 4.0, "rescore": "perhaps"})
    _error(["search", "x", *common], capsys, "saved search default 'rescore'", "defaults clear rescore")
    # ... and `defaults clear` repairs it without opening the models
    rc, out, _ = _run(["collection", "defaults", "clear", "rescore", *common], capsys)
    assert rc == 0 and json.loads(out.split("keeps: ", 1)[1]) == {"oversampling": 4.0}
    rc, out, _ = _run(["collection", "defaults", "clear", *common], capsys)
    assert rc == 0 and "no search defaults of its own" in out
    assert json.loads(_run(["collection", "info", "--json", *common], capsys)[1])["search_defaults"] == {}


def test_the_docs_name_every_savable_setting():
    from m3retriever.config.saved import SAVABLE

    text = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = text[text.index("## A collection's own search defaults") :].split("\n## ", 1)[0]
    assert all(f"`{name}`" in section for name in SAVABLE), [n for n in SAVABLE if f"`{n}`" not in section]
