"""Readers of folders and JSONL files: unreadable, malformed and BOM-marked input."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from m3retriever.errors import InputError
from m3retriever.ingest.sources import open_text, read_folder, read_jsonl

needs_non_root = pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions"
)


def _lines(n: int) -> bytes:
    return b"".join(json.dumps({"doc_id": str(i), "text": f"text {i}"}).encode() + b"\n" for i in range(n))


@pytest.mark.parametrize("name", ["a.txt", "a.md"])
def test_folder_drops_the_bom_and_normalises_newlines(tmp_path, name):
    (tmp_path / name).write_bytes(b"\xef\xbb\xbfline one\r\nline two\r")
    (doc,) = read_folder(tmp_path)
    assert doc.text == "line one\nline two\n"


@pytest.mark.parametrize("name", ["docs.jsonl", "docs.jsonl.gz"])
def test_jsonl_drops_the_bom(tmp_path, name):
    data = b"\xef\xbb\xbf" + _lines(2).replace(b"\n", b"\r\n")
    p = tmp_path / name
    p.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert [(d.doc_id, d.text) for d in read_jsonl(p)] == [("0", "text 0"), ("1", "text 1")]
    with open_text(p) as fh:
        assert fh.read().startswith('{"doc_id": "0"')


def test_non_utf8_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "docs.jsonl"
    p.write_bytes(_lines(3) + b'{"doc_id": "x", "text": "\xff"}\n')
    with pytest.raises(InputError, match=r"docs\.jsonl:4: not UTF-8 text \(byte 0xff\); convert"):
        list(read_jsonl(p))


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda data: b"plain text, not gzip", "not a valid gzip file"),
        (lambda data: data[: len(data) // 2], "the gzip data is truncated"),
        (lambda data: data[:40] + b"\xff" * 50 + data[90:], "gzip"),
    ],
    ids=["not-gzip", "truncated", "corrupt"],
)
def test_broken_gzip(tmp_path, mangle, message):
    p = tmp_path / "docs.jsonl.gz"
    p.write_bytes(mangle(gzip.compress(_lines(300))))
    with pytest.raises(InputError, match=message) as info:
        list(read_jsonl(p))
    assert str(p) in str(info.value) and "re-create" in str(info.value)


@pytest.mark.parametrize("metadata", [[1, 2], "lang=en", [], "", False])
def test_jsonl_metadata_must_be_an_object(tmp_path, metadata):
    p = tmp_path / "docs.jsonl"
    p.write_text(json.dumps({"doc_id": "1", "text": "t", "metadata": metadata}) + "\n")
    with pytest.raises(InputError, match=r"docs\.jsonl:1: 'metadata' must be a JSON object"):
        list(read_jsonl(p))


def test_jsonl_null_metadata_is_empty(tmp_path):
    p = tmp_path / "docs.jsonl"
    p.write_text(json.dumps({"doc_id": "1", "text": "t", "metadata": None}) + "\n")
    assert [d.metadata for d in read_jsonl(p)] == [{}]


def test_jsonl_that_is_a_directory(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        open_text(tmp_path)


def test_folder_skips_and_reports_unreadable_files(tmp_path, caplog):
    (tmp_path / "a.txt").write_text("good")
    (tmp_path / "b.txt").write_bytes(b"line\ncaf\xe9")
    (tmp_path / "c.txt").write_text(" ")
    skipped: list[str] = []
    assert [d.doc_id for d in read_folder(tmp_path, skipped=skipped)] == ["a.txt"]
    assert skipped == [
        f"{tmp_path / 'b.txt'}: not UTF-8 text (byte 0xe9) on line 2",
        f"{tmp_path / 'c.txt'}: empty file",
    ]
    assert f"skipping {tmp_path / 'b.txt'}: not UTF-8" in caplog.text
    with pytest.raises(InputError, match=r"b\.txt: not UTF-8 text .* on line 2; convert .* remove it"):
        list(read_folder(tmp_path, strict=True))


def test_folder_skips_a_file_it_may_not_read(tmp_path, monkeypatch):
    """Permission denied, simulated so the test also means something as root."""
    (tmp_path / "a.txt").write_text("good")
    (tmp_path / "secret.txt").write_text("hidden")
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "secret.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    skipped: list[str] = []
    assert [d.doc_id for d in read_folder(tmp_path, skipped=skipped)] == ["a.txt"]
    assert skipped == [f"{tmp_path / 'secret.txt'}: permission denied"]
    with pytest.raises(InputError, match=r"secret\.txt: permission denied; make it readable"):
        list(read_folder(tmp_path, strict=True))


@needs_non_root
def test_unreadable_files(tmp_path):
    (tmp_path / "a.txt").write_text("good")
    secret = tmp_path / "secret.txt"
    secret.write_text("hidden")
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_bytes(_lines(1))
    secret.chmod(0)
    jsonl.chmod(0)
    try:
        skipped: list[str] = []
        assert [d.doc_id for d in read_folder(tmp_path, skipped=skipped)] == ["a.txt"]
        assert skipped == [f"{secret}: permission denied"]
        with pytest.raises(InputError, match="permission denied"):
            list(read_jsonl(jsonl))
    finally:
        secret.chmod(0o600)
        jsonl.chmod(0o600)


def test_jsonl_nested_beyond_the_parser_is_an_input_error(tmp_path):
    deep = '{"doc_id": "x", "text": "t", "metadata": ' + '{"k": ' * 5000 + "1" + "}" * 5001
    path = tmp_path / "deep.jsonl"
    path.write_text(_lines(1).decode() + deep + "\n")
    with pytest.raises(InputError, match=r"deep\.jsonl:2: JSON nested too deeply"):
        list(read_jsonl(path))
