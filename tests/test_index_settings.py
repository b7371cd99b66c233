"""A collection's index settings (quantization, on-disk vectors and payloads, HNSW shape), on
both backends and through every way of asking for them:

- the store: they reach the engine, quantized search with rescoring finds what unquantized
  search finds, Edge and qdrant-client agree under every plan;
- the configuration and ``Retriever``: bad values are errors, defaults follow the expected
  size, an existing collection keeps its own and other settings for it are a clear error;
- ``m3retriever ingest``/``eval`` options: the same resolution as the TOML file and ``M3R_*``
  variables (and winning over them), errors as ``error: ...`` with exit status 2 and nothing
  written;
- a copy (``copy_collection``, ``m3retriever collection copy``) whose target gets other
  settings than its source, without re-encoding.

Tiny random models; real embedded stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m3retriever import Config, ConfigError, copy_collection, load_config
from m3retriever.cli import build_parser, main
from m3retriever.cli.index_options import index_overrides
from m3retriever.config.resolution import resolve
from m3retriever.config.sizing import auto_index_settings
from m3retriever.filters import Eq, Filter
from m3retriever.ingest import point_id
from m3retriever.store import open_store
from m3retriever.store.index_settings import LEGACY_INDEX_SETTINGS
from m3retriever.store.kept import search_defaults
from m3retriever.store.schema import DENSE, SPARSE, Branch, CollectionSpec, HybridQuery, StoredPoint
from m3retriever.types import SparseVector
from test_transfer import _filled, _open, _rankings, _same_points, opened

# -- the store: engines, plans, rescoring -----------------------------------------------------
DIM = 128
N = 400
PLANS = [
    {},
    {"quantization": "scalar", "vectors_on_disk": True, "payload_on_disk": True},
    {"quantization": "binary", "vectors_on_disk": True},
    {"quantization": "turbo", "payload_on_disk": True, "hnsw_m": 8, "hnsw_ef_construct": 32},
    {"quantization": "scalar", "hnsw_m": 32},
]


def _data(seed: int = 0) -> tuple[np.ndarray, list[SparseVector]]:
    """Clustered unit vectors (16 centres) and sparse vectors over a small vocabulary."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((16, DIM))
    x = centers[rng.integers(0, 16, N)] + 0.8 * rng.standard_normal((N, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sparse = []
    for _ in range(N):
        ids = np.unique(rng.integers(0, 200, 8))
        sparse.append(SparseVector(tuple(int(i) for i in ids), tuple(float(v) for v in rng.random(len(ids)) + 0.1)))
    return x.astype(np.float32), sparse


def _load(location: str, plan: dict[str, Any], x: np.ndarray, sparse: list[SparseVector]) -> Any:
    store = open_store(location)
    store.ensure_collection(CollectionSpec(name="c", dense_dim=DIM, sparse=True, fingerprint={"t": 1}, **plan))
    store.upsert(
        "c",
        [
            StoredPoint(
                id=point_id(f"d{i}", 0),
                payload={"doc_id": f"d{i}", "chunk_index": 0, "metadata": {"g": i % 3}},
                dense=x[i],
                sparse=sparse[i],
            )
            for i in range(N)
        ],
    )
    store.optimize("c")
    return store


def _truth(x: np.ndarray, q: np.ndarray, k: int, keep: np.ndarray | None = None) -> set[str]:
    scores = x @ q
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    return {point_id(f"d{i}", 0) for i in np.argsort(-scores)[:k]}


@pytest.mark.parametrize("plan", PLANS[1:], ids=lambda p: p["quantization"] + str(len(p)))
def test_settings_reach_both_engines(tmp_path, plan):
    x, sparse = _data()
    for location in (str(tmp_path / "edge"), ":memory:"):
        store = _load(location, plan, x, sparse)
        assert store.index_settings("c") == {**LEGACY_INDEX_SETTINGS, **plan}
        assert store.info("c")["index"] == store.index_settings("c")
        store.close()
    reopened = open_store(str(tmp_path / "edge"))
    assert reopened.info("c")["index"] == {**LEGACY_INDEX_SETTINGS, **plan}  # Edge rewrites its config on load
    reopened.close()
    # The engine's own records: Edge's shard config, and qdrant-client's collection config.
    engine = json.loads((tmp_path / "edge" / "c" / "edge_config.json").read_text())
    assert next(iter(engine["quantization_config"])) == plan["quantization"]
    assert engine["quantization_config"][plan["quantization"]]["always_ram"] is True
    assert bool(engine["vectors"]["dense"].get("on_disk")) == plan.get("vectors_on_disk", False)
    assert bool(engine["sparse_vectors"]["sparse"].get("on_disk")) == plan.get("vectors_on_disk", False)
    assert bool(engine.get("on_disk_payload")) == plan.get("payload_on_disk", False)
    assert engine["hnsw_config"]["m"] == plan.get("hnsw_m", 16)
    client = open_store(":memory:")
    client.ensure_collection(CollectionSpec(name="c", dense_dim=DIM, sparse=True, **plan))
    params = client.client.get_collection("c").config.params  # type: ignore[attr-defined]
    assert bool(params.vectors[DENSE].on_disk) == plan.get("vectors_on_disk", False)
    index = params.sparse_vectors[SPARSE].index
    assert bool(index and index.on_disk) == plan.get("vectors_on_disk", False)
    client.close()


def test_a_collection_without_settings_reads_back_the_old_defaults(tmp_path):
    for location in (str(tmp_path / "edge"), ":memory:"):
        store = open_store(location)
        store.ensure_collection(CollectionSpec(name="c", dense_dim=4, sparse=False))
        assert store.index_settings("c") == dict(LEGACY_INDEX_SETTINGS)
        store.close()
    reopened = open_store(str(tmp_path / "edge"))  # loading the shard again keeps them
    assert reopened.info("c")["index"] == dict(LEGACY_INDEX_SETTINGS)
    reopened.close()
    engine = json.loads((tmp_path / "edge" / "c" / "edge_config.json").read_text())
    assert "quantization_config" not in engine and engine["on_disk_payload"] is False
    segments = [json.loads(f.read_text()) for f in (tmp_path / "edge" / "c" / "segments").glob("*/segment.json")]
    assert segments and all(
        seg["config"]["payload_storage_type"]["type"] == "in_ram_mmap" for seg in segments
    )  # not "mmap"


@pytest.mark.parametrize("quantization", ["scalar", "turbo", "binary"])
def test_quantized_search_with_rescoring_finds_the_exact_top_ids_on_both(tmp_path, quantization):
    x, sparse = _data(1)
    plan = {"quantization": quantization, "vectors_on_disk": True}
    stores = [_load(str(tmp_path / "edge"), plan, x, sparse), _load(":memory:", plan, x, sparse)]
    rng = np.random.default_rng(5)
    oversampling = 8.0 if quantization == "binary" else 3.0
    for _ in range(10):
        q = x[rng.integers(0, N)] + 0.3 * rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM)
        hq = HybridQuery(branches=(Branch(DENSE, q.tolist(), 10),), limit=10, rescore=True, oversampling=oversampling)
        truth = _truth(x, q / np.linalg.norm(q), 10)
        for store in stores:
            assert {r.id for r in store.query("c", [hq])[0]} == truth
    for store in stores:
        store.close()


_OPEN: dict[int, list[Any]] = {}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Per plan (by index), an Edge store and a qdrant-client store holding the same data."""
    x, sparse = _data(2)
    root = tmp_path_factory.mktemp("plans")

    def get(i: int) -> list[Any]:
        if i not in _OPEN:
            _OPEN[i] = [_load(str(root / f"edge{i}"), PLANS[i], x, sparse), _load(":memory:", PLANS[i], x, sparse)]
        return _OPEN[i]

    yield x, sparse, get
    for stores in _OPEN.values():
        for store in stores:
            store.close()
    _OPEN.clear()


def _ranked(records: list[Any]) -> tuple[list[float], set[str]]:
    """Scores (rounded) and the ids ranked above the last score (ties at the cut may differ)."""
    scores = [round(r.score, 5) for r in records]
    return scores, {r.id for r in records if round(r.score, 5) > scores[-1]}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.integers(0, len(PLANS) - 1),
    group=st.none() | st.integers(0, 2),
    row=st.integers(0, N - 1),
    fusion=st.sampled_from(["rrf", "dbsf"]),
)
def test_edge_and_client_agree_under_every_plan(loaded, plan, group, row, fusion):
    """Hybrid queries (dense + sparse, a filter or none) rank the same on both backends under
    every plan (quantized ones rescored), and the dense branch finds the exact ids."""
    x, sparse, get = loaded
    flt: Filter | None = None if group is None else Eq("g", group)
    keep = None if group is None else np.arange(N) % 3 == group
    knobs: dict[str, Any] = {"rescore": True, "oversampling": 8.0} if PLANS[plan].get("quantization") else {}
    q = x[row].tolist()
    dense = HybridQuery(branches=(Branch(DENSE, q, 10),), limit=10, filter=flt, **knobs)
    both = HybridQuery(
        branches=(Branch(DENSE, q, 20), Branch(SPARSE, sparse[row], 20)), limit=10, fusion=fusion, filter=flt, **knobs
    )
    edge, client = (store.query("c", [dense, both]) for store in get(plan))
    truth = _truth(x, x[row], 10, keep)
    assert {r.id for r in client[0]} == truth  # qdrant-client's local mode searches exactly
    if PLANS[plan].get("quantization") == "binary":
        # One bit per dimension: rescoring recovers most, not all, of the exact top 10.
        assert len({r.id for r in edge[0]} & truth) >= 7
        return
    assert {r.id for r in edge[0]} == truth
    (e_scores, e_ids), (c_scores, c_ids) = _ranked(edge[1]), _ranked(client[1])
    assert e_scores == pytest.approx(c_scores, abs=1e-4)
    assert e_ids == c_ids


# -- the configuration: bad values, defaults by size -------------------------------------------
def test_bad_values_are_config_errors():
    for bad in (
        {"quantization": "int4"},
        {"hnsw_m": 2},
        {"hnsw_ef_construct": 10**6},
        {"expected_chunks": 0},
        {"payload_on_disk": "yes"},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Config(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="quantization"):
        load_config(env={"M3R_QUANTIZATION": "pq"})
    for bad_search in ({"oversampling": 0.5}, {"oversampling": float("nan")}, {"rescore": "x"}):
        with pytest.raises(ConfigError, match=next(iter(bad_search))):
            load_config(env={}, search=bad_search)


def test_defaults_by_expected_size():
    assert resolve(Config()).quantization == "none"  # unknown size: as before
    small = resolve(Config(expected_chunks=100_000))
    assert (small.quantization, small.vectors_on_disk, small.payload_on_disk) == ("none", False, False)
    big = resolve(Config(expected_chunks=1_000_000))
    assert (big.quantization, big.vectors_on_disk, big.payload_on_disk, big.hnsw_m) == ("scalar", True, True, 16)
    mixed = resolve(Config(expected_chunks=1_000_000, quantization="binary", payload_on_disk=False))
    assert (mixed.quantization, mixed.vectors_on_disk, mixed.payload_on_disk) == ("binary", True, False)
    assert resolve(Config()).search.oversampling == 2.0 and resolve(Config()).search.rescore is True


# -- Retriever: existing and new collections --------------------------------------------------
@pytest.mark.parametrize("backend", ["edge", "memory"])
def test_an_existing_collection_keeps_its_settings(tmp_path, tiny_settings, corpus_docs, backend):
    from qdrant_client import QdrantClient

    from m3retriever import Retriever

    client = QdrantClient(":memory:") if backend == "memory" else None
    location = ":memory:" if client is not None else str(tmp_path / "store")

    def make(**more: Any) -> Retriever:
        return Retriever(load_config(env={}, location=location, **tiny_settings, **more), client=client)

    old = make()
    old.ingest(corpus_docs[:4])
    before = [h.doc_id for h in old.search("bank", rerank=False)]
    assert old.info()["index"] == dict(LEGACY_INDEX_SETTINGS)
    old.close()
    # Auto settings for a big collection do not apply to an existing one: it keeps its own.
    again = make(expected_chunks=5_000_000)
    assert again.info()["index"]["quantization"] == "none"
    assert [h.doc_id for h in again.search("bank", rerank=False)] == before
    again.close()
    with pytest.raises(ConfigError, match="quantization: created with 'none', configured 'scalar'"):
        make(quantization="scalar")
    make(quantization="none", hnsw_m=16).close()  # the same values, explicit: fine


def test_a_new_collection_takes_the_settings_and_searches_rescored(tmp_path, tiny_settings, corpus_docs):
    from m3retriever import Retriever

    plain = Retriever(load_config(env={}, location=str(tmp_path / "a"), **tiny_settings))
    quant = Retriever(load_config(env={}, location=str(tmp_path / "b"), expected_chunks=1_000_000, **tiny_settings))
    for r in (plain, quant):
        r.ingest(corpus_docs)
        r.optimize()
    assert quant.info()["index"] == {**LEGACY_INDEX_SETTINGS, **auto_index_settings(1_000_000)}
    for query in ("bank", "river", "money"):
        a = [h.doc_id for h in plain.search(query, rerank=False)]
        assert [h.doc_id for h in quant.search(query, rerank=False)] == a
    plain.close()
    quant.close()


# -- the command line: ingest and eval options ------------------------------------------------
@pytest.fixture
def corpus_dir(tmp_path: Path, corpus_docs: list[dict]) -> Path:
    d = tmp_path / "corpus"
    d.mkdir()
    for doc in corpus_docs[:6]:
        (d / f"{doc['doc_id']}.txt").write_text(doc["text"])
    return d


def _info(config_file: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["collection", "info", "--config", str(config_file), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_ingest_creates_a_quantized_collection_and_keeps_it(config_file, corpus_dir, tmp_path, capsys):
    ingest = ["ingest", str(corpus_dir), "--config", str(config_file), "--quiet"]
    flags = [
        "--quantization",
        "scalar",
        "--expected-chunks",
        "1000",
        "--no-payload-on-disk",
        "--hnsw-m",
        "8",
        "--hnsw-ef-construct",
        "64",
    ]
    assert main([*ingest, *flags]) == 0
    assert "6 added" in capsys.readouterr().out
    index = {
        "quantization": "scalar",
        "vectors_on_disk": True,
        "payload_on_disk": False,
        "hnsw_m": 8,
        "hnsw_ef_construct": 64,
    }
    info = _info(config_file, capsys)
    assert info["index"] == index
    # the settings in force are the collection's own, said to come from it
    assert {name: info["settings"][name] for name in index} == {
        k: {"value": v, "source": "collection"} for k, v in index.items()
    }
    engine = json.loads((tmp_path / "store" / "cli" / "edge_config.json").read_text())  # the engine's own record
    assert list(engine["quantization_config"]) == ["scalar"] and engine["hnsw_config"]["m"] == 8
    assert engine["vectors"]["dense"]["on_disk"] is True and not engine.get("on_disk_payload")
    # Later runs leave them out (the collection's own apply) or repeat them: both fine.
    assert main(ingest) == 0 and "6 unchanged" in capsys.readouterr().out
    assert main([*ingest, *flags]) == 0  # the same command again: its values are the collection's
    capsys.readouterr()
    assert main(["search", "capital of France", "--config", str(config_file), "--json", "-k", "2"]) == 0
    assert len(json.loads(capsys.readouterr().out)["hits"]) == 2  # searched through the int8 copy, rescored
    # Other values for the existing collection: a clean error naming each, and nothing written.
    (corpus_dir / "new.txt").write_text("A new document that must not be written.")
    _fails(
        capsys,
        [*ingest, "--quantization", "binary", "--payload-on-disk", "--hnsw-m", "16"],
        "collection 'cli' was created with other index settings",
        "quantization: created with 'scalar', configured 'binary'",
        "payload_on_disk: created with False, configured True",
        "hnsw_m: created with 8, configured 16",
        "new collection",
    )
    assert _info(config_file, capsys)["documents"] == 6


def test_expected_chunks_alone_picks_the_settings_by_size(config_file, corpus_dir, capsys):
    assert (
        main(["ingest", str(corpus_dir), "--config", str(config_file), "--quiet", "--expected-chunks", "300000"]) == 0
    )
    capsys.readouterr()
    index = _info(config_file, capsys)["index"]
    assert (index["quantization"], index["vectors_on_disk"], index["payload_on_disk"]) == ("scalar", True, True)


def test_options_win_over_the_file_and_the_environment(config_file, corpus_dir, monkeypatch, capsys):
    plain = config_file.read_text()
    config_file.write_text(plain + 'quantization = "binary"\nhnsw_m = 32\n')
    monkeypatch.setenv("M3R_HNSW_EF_CONSTRUCT", "40")
    monkeypatch.setenv("M3R_PAYLOAD_ON_DISK", "true")
    argv = [
        "ingest",
        str(corpus_dir),
        "--config",
        str(config_file),
        "--quiet",
        "--quantization",
        "turbo",
        "--no-payload-on-disk",
    ]
    assert main(argv) == 0
    capsys.readouterr()
    _fails(
        capsys,
        ["collection", "info", "--config", str(config_file)],
        "quantization: created with 'turbo', configured 'binary'",
    )
    config_file.write_text(plain)  # leave them to the collection
    monkeypatch.delenv("M3R_PAYLOAD_ON_DISK")
    index = _info(config_file, capsys)["index"]
    # turbo and no payload on disk from the options; m from the file; ef_construct from the environment
    assert index == {
        "quantization": "turbo",
        "vectors_on_disk": True,
        "payload_on_disk": False,
        "hnsw_m": 32,
        "hnsw_ef_construct": 40,
    }


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--quantization", "pq"], "quantization must be one of ['none', 'scalar', 'binary', 'turbo'], got 'pq'"),
        (["--hnsw-m", "2"], "hnsw_m must be a whole number between 4 and 128, got 2"),
        (["--hnsw-m", "eight"], "hnsw_m: cannot use 'eight'"),
        (["--hnsw-ef-construct", "5000"], "hnsw_ef_construct must be a whole number between 4 and 4,096"),
        (["--expected-chunks", "0"], "expected_chunks must be a whole number between 1"),
        (["--expected-chunks", "1.5"], "expected_chunks: cannot use '1.5'"),
    ],
)
def test_ingest_bad_values_are_clean_errors_before_anything_is_created(
    config_file, corpus_dir, tmp_path, capsys, flags, needle
):
    _fails(capsys, ["ingest", str(corpus_dir), "--config", str(config_file), "--quiet", *flags], needle)
    assert not (tmp_path / "store" / "cli").exists()


def test_a_bad_boolean_is_refused_by_the_parser(config_file, corpus_dir, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", str(corpus_dir), "--config", str(config_file), "--vectors-on-disk=maybe"])
    assert exit_.value.code == 2 and "Traceback" not in capsys.readouterr().err


def _parsed(*flags: str) -> dict:
    args = build_parser().parse_args(["ingest", "some/path", *flags])
    return index_overrides(args)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(-10, 300), ef=st.integers(-10, 5000), n=st.integers(-5, 10**13))
def test_integer_options_are_checked_as_the_settings_are(m, ef, n):
    """Any whole number given on the command line is accepted exactly when the same value in
    a configuration file is, and means the same."""
    given_ = _parsed("--hnsw-m", str(m), "--hnsw-ef-construct", str(ef), "--expected-chunks", str(n))
    ok = 4 <= m <= 128 and 4 <= ef <= 4096 and 1 <= n <= 10**12
    try:
        cfg = load_config(env={}, **given_)
    except ConfigError as exc:
        assert not ok, exc
        assert any(name in str(exc) for name in ("hnsw_m", "hnsw_ef_construct", "expected_chunks"))
        with pytest.raises(ConfigError):
            load_config(env={}, hnsw_m=m, hnsw_ef_construct=ef, expected_chunks=n)
    else:
        assert ok and (cfg.hnsw_m, cfg.hnsw_ef_construct, cfg.expected_chunks) == (m, ef, n)


def test_options_left_out_are_unset():
    assert _parsed() == dict.fromkeys(_parsed(), None)
    assert _parsed("--vectors-on-disk", "--no-payload-on-disk")["vectors_on_disk"] is True
    assert _parsed("--no-payload-on-disk")["payload_on_disk"] is False


def test_eval_takes_them_for_the_collection_it_ingests(config_file, tmp_path, capsys):
    pytest.importorskip("ranx")
    from test_evaluation import write_beir

    root = write_beir(tmp_path / "ds", gz=False)
    argv = [
        "eval",
        str(root),
        "--config",
        str(config_file),
        "--max-queries",
        "2",
        "--stages",
        "dense,fused",
        "--json",
        "--quiet",
    ]
    _fails(capsys, [*argv, "--quantization", "int4"], "quantization must be one of")
    assert main([*argv, "--quantization", "scalar", "--hnsw-m", "8"]) == 0
    assert json.loads(capsys.readouterr().out)["n_queries"] == 2
    index = _info(config_file, capsys)["index"]
    assert (index["quantization"], index["hnsw_m"]) == ("scalar", 8)


# -- a copy with other index settings -------------------------------------------------------
ASKED = {"quantization": "scalar", "vectors_on_disk": True, "hnsw_m": 8, "hnsw_ef_construct": 64}


@pytest.mark.parametrize("kinds", [("edge", "edge"), ("edge", "memory"), ("memory", "edge")])
def test_a_copy_can_quantize_without_re_encoding(kinds, tmp_path):
    src = _filled(_open(kinds[0], tmp_path, "a"), n=60)
    dst = _open(kinds[1], tmp_path, "b")
    try:
        report = copy_collection(opened(src, "c"), dst, batch=16, index_settings={**ASKED, "payload_on_disk": None})
        assert report.complete and report.target_count == 60
        assert dst.index_settings("c") == {**LEGACY_INDEX_SETTINGS, **ASKED}
        assert src.index_settings("c") == dict(LEGACY_INDEX_SETTINGS)  # the source as it was
        _same_points(src, dst)
        assert _rankings(dst, "c") == _rankings(src, "c")
        assert search_defaults(dst, "c") == search_defaults(src, "c")
        # run again (idempotent) with the same settings: fine; with others: refused, naming them
        assert copy_collection(opened(src, "c"), dst, index_settings=ASKED).target_count == 60
        with pytest.raises(ConfigError, match="quantization: created with 'scalar', configured 'binary'"):
            copy_collection(opened(src, "c"), dst, index_settings={"quantization": "binary"})
        assert copy_collection(opened(src, "c"), dst).target_count == 60  # left out: the target's own
    finally:
        src.close()
        dst.close()


@pytest.mark.parametrize(
    ("asked", "needle"),
    [
        ({"quantization": "pq"}, "quantization must be"),
        ({"hnsw_m": 1}, "hnsw_m must be"),
        ({"payload_on_disk": "yes"}, "payload_on_disk must be true or false"),
        ({"expected_chunks": 10}, "not index settings"),
    ],
)
def test_a_copy_with_bad_index_settings_writes_nothing(tmp_path, asked, needle):
    src = _filled(open_store(tmp_path / "a"), n=5)
    dst = open_store(tmp_path / "b")
    try:
        with pytest.raises(ConfigError, match=needle):
            copy_collection(opened(src, "c"), dst, index_settings=asked)
        assert not dst.has_collection("c")
    finally:
        src.close()
        dst.close()


def test_cli_copy_with_index_settings(tmp_path, capsys):
    _filled(open_store(tmp_path / "a"), n=20).close()
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    base = ["collection", "copy", "--from", a, "--to", b, "--collection", "c"]
    assert main([*base, "--quantization", "pq"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "quantization must be one of" in err and "Traceback" not in err
    assert main([*base, "--quantization", "binary", "--no-vectors-on-disk", "--hnsw-m", "12"]) == 0
    assert "copied 20 points" in capsys.readouterr().out
    assert main([*base, "--quantization", "turbo"]) == 2
    assert "quantization: created with 'binary', configured 'turbo'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--expected-chunks", "10"])  # a copy knows its size: no such option
    dst = open_store(b)
    try:
        kept = dst.index_settings("c")
        assert (kept["quantization"], kept["vectors_on_disk"], kept["hnsw_m"]) == ("binary", False, 12)
    finally:
        dst.close()
