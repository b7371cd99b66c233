"""A copy whose target gets other index settings than its source (quantization, on-disk
storage, HNSW shape): the points, vectors and metadata are the source's, the target is
created with the settings asked for, an existing target with other ones is refused, bad values
are errors before anything is written; in Python and through ``m3retriever copy``."""

from __future__ import annotations

import pytest

from m3retriever import copy_collection
from m3retriever.cli import main
from m3retriever.errors import ConfigError
from m3retriever.store import open_store
from m3retriever.store.index_settings import LEGACY_INDEX_SETTINGS
from test_transfer import _filled, _open, _rankings, _same_points

ASKED = {"quantization": "scalar", "vectors_on_disk": True, "hnsw_m": 8, "hnsw_ef_construct": 64}


@pytest.mark.parametrize("kinds", [("edge", "edge"), ("edge", "memory"), ("memory", "edge")])
def test_a_copy_can_quantize_without_re_encoding(kinds, tmp_path):
    src = _filled(_open(kinds[0], tmp_path, "a"), n=60)
    dst = _open(kinds[1], tmp_path, "b")
    try:
        report = copy_collection(src, dst, "c", batch=16, index_settings={**ASKED, "payload_on_disk": None})
        assert report.complete and report.target_count == 60
        assert dst.index_settings("c") == {**LEGACY_INDEX_SETTINGS, **ASKED}
        assert src.index_settings("c") == dict(LEGACY_INDEX_SETTINGS)  # the source as it was
        _same_points(src, dst)
        assert _rankings(dst, "c") == _rankings(src, "c")
        assert dst.search_defaults("c") == src.search_defaults("c")
        # run again (idempotent) with the same settings: fine; with others: refused, naming them
        assert copy_collection(src, dst, "c", index_settings=ASKED).target_count == 60
        with pytest.raises(ConfigError, match="quantization: created with 'scalar', configured 'binary'"):
            copy_collection(src, dst, "c", index_settings={"quantization": "binary"})
        assert copy_collection(src, dst, "c").target_count == 60  # left out: the target's own
    finally:
        src.close()
        dst.close()


@pytest.mark.parametrize(
    ("asked", "needle"),
    [({"quantization": "pq"}, "quantization must be"), ({"hnsw_m": 1}, "hnsw_m must be"),
     ({"payload_on_disk": "yes"}, "payload_on_disk must be true or false"), ({"expected_chunks": 10}, "not index settings")],
)
def test_bad_index_settings_are_refused_before_anything_is_written(tmp_path, asked, needle):
    src = _filled(open_store(tmp_path / "a"), n=5)
    dst = open_store(tmp_path / "b")
    try:
        with pytest.raises(ConfigError, match=needle):
            copy_collection(src, dst, "c", index_settings=asked)
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
        settings = dst.index_settings("c")
        assert (settings["quantization"], settings["vectors_on_disk"], settings["hnsw_m"]) == ("binary", False, 12)
    finally:
        dst.close()
