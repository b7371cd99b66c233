"""``m3retriever ingest`` options for a new collection's index settings: they reach the engine
through the same resolution as the TOML file and ``M3R_*`` variables (and win over them), an
existing collection keeps its own, other values for it and bad values end as ``error: ...``
with exit status 2 and nothing written (tiny random models; a real embedded store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m3retriever import ConfigError, load_config
from m3retriever.cli import build_parser, main
from m3retriever.cli.index_options import index_overrides


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
    flags = ["--quantization", "scalar", "--expected-chunks", "1000", "--no-payload-on-disk", "--hnsw-m", "8", "--hnsw-ef-construct", "64"]
    assert main([*ingest, *flags]) == 0
    assert "6 added" in capsys.readouterr().out
    index = {"quantization": "scalar", "vectors_on_disk": True, "payload_on_disk": False, "hnsw_m": 8, "hnsw_ef_construct": 64}
    info = _info(config_file, capsys)
    assert info["index"] == index
    # the settings in force are the collection's own, said to come from it
    assert {name: info["settings"][name] for name in index} == {k: {"value": v, "source": "collection"} for k, v in index.items()}
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
    assert main(["ingest", str(corpus_dir), "--config", str(config_file), "--quiet", "--expected-chunks", "300000"]) == 0
    capsys.readouterr()
    index = _info(config_file, capsys)["index"]
    assert (index["quantization"], index["vectors_on_disk"], index["payload_on_disk"]) == ("scalar", True, True)


def test_options_win_over_the_file_and_the_environment(config_file, corpus_dir, monkeypatch, capsys):
    plain = config_file.read_text()
    config_file.write_text(plain + 'quantization = "binary"\nhnsw_m = 32\n')
    monkeypatch.setenv("M3R_HNSW_EF_CONSTRUCT", "40")
    monkeypatch.setenv("M3R_PAYLOAD_ON_DISK", "true")
    argv = ["ingest", str(corpus_dir), "--config", str(config_file), "--quiet", "--quantization", "turbo", "--no-payload-on-disk"]
    assert main(argv) == 0
    capsys.readouterr()
    _fails(capsys, ["collection", "info", "--config", str(config_file)], "quantization: created with 'turbo', configured 'binary'")
    config_file.write_text(plain)  # leave them to the collection
    monkeypatch.delenv("M3R_PAYLOAD_ON_DISK")
    index = _info(config_file, capsys)["index"]
    # turbo and no payload on disk from the options; m from the file; ef_construct from the environment
    assert index == {"quantization": "turbo", "vectors_on_disk": True, "payload_on_disk": False, "hnsw_m": 32, "hnsw_ef_construct": 40}


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
def test_bad_values_are_clean_errors_before_anything_is_created(config_file, corpus_dir, tmp_path, capsys, flags, needle):
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
    argv = ["eval", str(root), "--config", str(config_file), "--max-queries", "2", "--stages", "dense,fused", "--json", "--quiet"]
    _fails(capsys, [*argv, "--quantization", "int4"], "quantization must be one of")
    assert main([*argv, "--quantization", "scalar", "--hnsw-m", "8"]) == 0
    assert json.loads(capsys.readouterr().out)["n_queries"] == 2
    index = _info(config_file, capsys)["index"]
    assert (index["quantization"], index["hnsw_m"]) == ("scalar", 8)
