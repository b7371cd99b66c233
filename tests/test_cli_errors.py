"""User errors on the command line end as ``error: <message>`` and exit status 2, never as a
traceback: bad store locations, unreadable or malformed input files, non-UTF-8 arguments; and
the embedded store's lock survives its file being deleted or replaced."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from m3retriever.cli import main
from m3retriever.errors import StoreError, StoreInUseError

needs_non_root = pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions"
)


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    """Run the CLI, expect exit status 2 and ``error:`` naming every needle; return stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def _ingest(path: Path, config: Path, *extra: str) -> list[str]:
    return ["ingest", str(path), "--config", str(config), "--quiet", *extra]


def _docs_jsonl(n: int = 3) -> bytes:
    return b"".join(
        json.dumps({"doc_id": f"d{i}", "text": f"document number {i} about cats"}).encode() + b"\n"
        for i in range(n)
    )


# -- store location ------------------------------------------------------------------------
def test_location_that_is_a_file(config_file, tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    _fails(capsys, ["collection", "info", "--config", str(config_file), "--location", str(f)], str(f), "is a file")


def test_location_under_a_file(config_file, tmp_path, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    loc = f / "store"
    _fails(capsys, ["collection", "info", "--config", str(config_file), "--location", str(loc)], str(f), "is a file")


def test_lock_path_taken_by_a_directory(config_file, tmp_path, capsys):
    loc = tmp_path / "store"
    (loc / ".m3retriever.lock").mkdir(parents=True)
    _fails(
        capsys,
        ["collection", "info", "--config", str(config_file), "--location", str(loc)],
        str(loc / ".m3retriever.lock"),
        "remove whatever is at that path",
    )


@needs_non_root
def test_read_only_parent_directory(config_file, tmp_path, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        loc = parent / "store"
        _fails(capsys, ["collection", "info", "--config", str(config_file), "--location", str(loc)], str(loc), "permission denied")
    finally:
        parent.chmod(0o700)


@needs_non_root
def test_read_only_store_directory(config_file, tmp_path, capsys):
    loc = tmp_path / "store"
    loc.mkdir()
    loc.chmod(0o500)
    try:
        _fails(capsys, ["collection", "info", "--config", str(config_file), "--location", str(loc)], str(loc), "permission denied")
    finally:
        loc.chmod(0o700)


# -- input files ---------------------------------------------------------------------------
def test_non_utf8_jsonl(config_file, tmp_path, capsys):
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(_docs_jsonl(1) + '{"doc_id": "x", "text": "caf\xe9"}\n'.encode("latin-1"))
    _fails(capsys, _ingest(p, config_file), f"{p}:2", "not UTF-8", "convert it to UTF-8")


def test_file_that_is_not_gzip(config_file, tmp_path, capsys):
    p = tmp_path / "docs.jsonl.gz"
    p.write_bytes(_docs_jsonl())
    _fails(capsys, _ingest(p, config_file), str(p), "not a valid gzip file")


def test_corrupt_gzip(config_file, tmp_path, capsys):
    data = bytearray(gzip.compress(_docs_jsonl(200)))
    data[40:90] = b"\xff" * 50
    p = tmp_path / "docs.jsonl.gz"
    p.write_bytes(bytes(data))
    _fails(capsys, _ingest(p, config_file), str(p), "gzip", "re-create")


def test_truncated_gzip(config_file, tmp_path, capsys):
    data = gzip.compress(_docs_jsonl(200))
    p = tmp_path / "docs.jsonl.gz"
    p.write_bytes(data[: len(data) // 2])
    _fails(capsys, _ingest(p, config_file), str(p), "truncated")


@pytest.mark.parametrize("metadata", [["a", "b"], "lang=en", 0])
def test_jsonl_metadata_that_is_not_an_object(config_file, tmp_path, capsys, metadata):
    p = tmp_path / "docs.jsonl"
    p.write_bytes(_docs_jsonl(1) + json.dumps({"doc_id": "m", "text": "t", "metadata": metadata}).encode() + b"\n")
    _fails(capsys, _ingest(p, config_file), f"{p}:2", "'metadata' must be a JSON object")


def test_non_utf8_query_argument(config_file, capsys):
    # what Python makes of the byte 0xff in argv (surrogateescape)
    _fails(capsys, ["search", "caf\udcff", "--config", str(config_file)], "query", "not valid UTF-8", "0xff")


def test_non_utf8_filter_argument(config_file, capsys):
    _fails(capsys, ["search", "x", "--config", str(config_file), "--filter", '{"k": "\udcff"}'], "--filter", "UTF-8")


def test_os_error_that_escapes_is_an_error_line(config_file, capsys, monkeypatch):
    def broken(args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("m3retriever.cli.collection.cmd_info", broken)
    _fails(capsys, ["collection", "info", "--config", str(config_file)], "No space left on device")


# -- folders ---------------------------------------------------------------------------------
def test_folder_with_a_non_utf8_file_skips_and_lists_it(config_file, tmp_path, capsys):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "good.txt").write_text("Cats sit on mats in the sun.")
    (folder / "bad.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    assert main(_ingest(folder, config_file)) == 0
    out = capsys.readouterr().out
    assert "1 documents (1 added" in out
    assert "skipped 1 files" in out and f"{folder / 'bad.txt'}: not UTF-8 text" in out

    err = _fails(capsys, _ingest(folder, config_file, "--strict"), str(folder / "bad.txt"), "not UTF-8")
    assert "remove it from the folder" in err


def test_bom_is_stripped(config_file, tmp_path, capsys):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "bom.md").write_bytes(b"\xef\xbb\xbfBOM marked file about cats.\r\n")
    jsonl = tmp_path / "docs.jsonl.gz"
    jsonl.write_bytes(gzip.compress(b"\xef\xbb\xbf" + _docs_jsonl(1)))
    assert main(_ingest(folder, config_file)) == 0
    assert main(_ingest(jsonl, config_file)) == 0
    capsys.readouterr()
    assert main(["search", "cats", "--config", str(config_file), "--json", "--no-rerank"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert {h["doc_id"] for h in hits} == {"bom.md", "d0"}  # not "\ufeffd0"
    assert all("\ufeff" not in h["text"] for h in hits)


# -- the store's lock ------------------------------------------------------------------------
def _spec():
    from m3retriever.store.schema import CollectionSpec

    return CollectionSpec(name="c", dense_dim=4, fingerprint={"t": 1})


def test_lock_file_deleted_while_in_use(tmp_path):
    """flock locks an open file description, so two stores in one process conflict like two
    processes; deleting the lock file lets a second opener lock a new file, but the engine's
    WAL lock still stops it, and that must read as "in use"."""
    from m3retriever.store import open_store

    loc = tmp_path / "store"
    first = open_store(str(loc))
    try:
        first.ensure_collection(_spec())
        (loc / ".m3retriever.lock").unlink()
        second = open_store(str(loc))
        try:
            with pytest.raises(StoreInUseError, match="in use by another process"):
                second.ensure_collection(_spec())
        finally:
            second.close()
    finally:
        first.close()
    again = open_store(str(loc))
    again.ensure_collection(_spec())
    again.close()


def test_lock_file_replaced_between_open_and_lock_is_relocked(tmp_path, monkeypatch):
    from m3retriever.store import edge

    path = tmp_path / ".m3retriever.lock"
    original = edge._DirLock._acquire
    replaced = []

    def acquire_then_replace(self, fh):
        original(self, fh)
        if not replaced:  # someone swaps the file right after our first open
            path.unlink()
            path.write_text("")
            replaced.append(True)

    monkeypatch.setattr(edge._DirLock, "_acquire", acquire_then_replace)
    lock = edge._DirLock(path)
    monkeypatch.undo()
    try:
        assert os.fstat(lock._fh.fileno()).st_ino == os.stat(path).st_ino
        with pytest.raises(StoreInUseError):
            edge._DirLock(path)  # the lock is held on the file that is there now
    finally:
        lock.release()


def test_lock_file_that_keeps_disappearing(tmp_path, monkeypatch):
    from m3retriever.store import edge

    path = tmp_path / ".m3retriever.lock"
    original = edge._DirLock._acquire

    def acquire_then_delete(self, fh):
        original(self, fh)
        path.unlink()

    monkeypatch.setattr(edge._DirLock, "_acquire", acquire_then_delete)
    with pytest.raises(StoreError, match="deleted or replaced"):
        edge._DirLock(path)
