"""Ingesting a folder: a file longer than ``max_document_chars`` is skipped and listed like an
unreadable one (``--strict`` fails instead, before anything of the folder is written); the
progress bar counts documents against a total known up front and moves with each write, with
warnings printed above it, not through it."""

from __future__ import annotations

import gzip
import json
import logging
import re
import time
from pathlib import Path

import pytest

from m3retriever.cli import main
from m3retriever.errors import InputError
from m3retriever.ingest import Ingestor
from m3retriever.ingest.sources import read_folder, read_jsonl


def _folder(root: Path, n: int, big: str | None = None, bad: str | None = None) -> Path:
    root.mkdir()
    for i in range(n):
        (root / f"doc{i:02d}.txt").write_text(f"Document {i} about cats, dogs and item{i}.\n")
    if big:
        (root / big).write_text("a long file about cats " * 100)  # 2,300 characters
    if bad:
        (root / bad).write_bytes("caf\xe9 au lait".encode("latin-1"))
    return root


def _ingest(folder: Path, config: Path, *extra: str) -> list[str]:
    return ["ingest", str(folder), "--config", str(config), "--quiet", *extra]


def test_cli_skips_and_lists_a_file_over_max_document_chars(tmp_path: Path, config_file: Path, capsys):
    folder = _folder(tmp_path / "corpus", 3, big="big.txt", bad="bad.txt")
    assert main(_ingest(folder, config_file, "--max-document-chars", "1000")) == 0
    out = capsys.readouterr().out
    assert "3 documents (3 added" in out and "skipped 2 files:" in out
    listed = [line.strip() for line in out.splitlines() if "big.txt" in line]
    assert listed == [
        f"{folder / 'big.txt'}: too long: 2,300 characters, more than max_document_chars=1,000 characters "
        "(split the file, or raise the limit: --max-document-chars on the command line, "
        "M3R_MAX_DOCUMENT_CHARS or max_document_chars in the configuration)"
    ]
    assert f"{folder / 'bad.txt'}: not UTF-8 text" in out
    # raising the limit takes it in
    assert main(_ingest(folder, config_file, "--max-document-chars", "3000")) == 0
    assert "4 documents (1 added, 0 updated, 3 unchanged)" in capsys.readouterr().out


def test_cli_strict_fails_on_a_file_over_max_document_chars(tmp_path: Path, config_file: Path, capsys):
    folder = _folder(tmp_path / "corpus", 3, big="zz-big.txt")
    assert main(_ingest(folder, config_file, "--max-document-chars", "1000", "--strict")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / 'zz-big.txt'}: too long: 2,300 characters") and "Traceback" not in err
    assert "--max-document-chars" in err and "remove it from the folder" in err
    assert "Nothing of the folder was written" in err
    assert main(["collection", "info", "--config", str(config_file), "--json"]) == 2  # no collection was made
    assert "no collection" in capsys.readouterr().err


def test_a_file_far_over_the_limit_is_refused_without_being_read(tmp_path: Path, monkeypatch):
    folder = _folder(tmp_path / "corpus", 1, big="big.txt")
    read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        assert self.name != "big.txt", "read a file its size already refuses"
        return read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    skipped: list[str] = []
    assert [d.doc_id for d in read_folder(folder, skipped=skipped, max_chars=100)] == ["doc00.txt"]
    assert skipped == [
        f"{folder / 'big.txt'}: too long: 2,300 bytes, more than max_document_chars=100 characters "
        "(split the file, or raise the limit: --max-document-chars on the command line, "
        "M3R_MAX_DOCUMENT_CHARS or max_document_chars in the configuration)"
    ]


def test_strict_checks_the_whole_folder_before_the_first_write(tmp_path: Path, make_retriever):
    """A too long file after several write batches: with ``strict`` nothing is written; without,
    every other file is, and the report lists the long one."""
    folder = _folder(tmp_path / "corpus", 7, big="zz-big.txt")
    r = make_retriever(max_document_chars=1000)
    r._ingestor.doc_batch = 2
    with pytest.raises(InputError, match=r"zz-big\.txt: too long: 2,300 characters.*Nothing of the folder was written"):
        r.ingest_path(folder, strict=True)
    assert not r.store.has_collection(r.config.collection)
    report = r.ingest_path(folder)
    assert report.added == 7 and [e.split(": ")[1] for e in report.skipped_files] == ["too long"]
    assert r.info()["documents"] == 7


def test_the_number_of_documents_is_known_before_reading(tmp_path: Path):
    folder = _folder(tmp_path / "corpus", 4, bad="bad.txt")
    stream = read_folder(folder)
    assert len(stream) == 5  # the files, counted before any is read
    assert len(list(stream)) == 4 and len(stream) == 4  # the unreadable one dropped out
    lines = b"".join(json.dumps({"doc_id": str(i), "text": f"text {i}"}).encode() + b"\n" for i in range(7))
    (tmp_path / "docs.jsonl").write_bytes(lines)
    (tmp_path / "docs.jsonl.gz").write_bytes(gzip.compress(lines[:-1]))  # no final newline
    assert len(read_jsonl(tmp_path / "docs.jsonl")) == len(read_jsonl(tmp_path / "docs.jsonl.gz")) == 7


def test_progress_bar_counts_against_the_total_and_moves_with_each_write(tmp_path: Path, make_retriever, monkeypatch, capsys):
    monkeypatch.setattr(Ingestor, "write_seconds", 0.2)
    monkeypatch.setattr(Ingestor, "first_write_chunks", 2)
    folder = _folder(tmp_path / "corpus", 12, bad="doc05-bad.txt")
    r = make_retriever()
    encode = r.encoders.encode_document

    def slow(texts, lengths=None):  # a slow model: 100 ms a chunk
        time.sleep(0.1 * len(texts))
        return encode(texts, lengths)

    r.encoders.encode_document = slow
    handler = logging.StreamHandler()  # to the sys.stderr that capsys reads
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        capsys.readouterr()
        report = r.ingest_path(folder, show_progress=True)
    finally:
        logging.getLogger().removeHandler(handler)
    err = capsys.readouterr().err
    assert report.added == 12
    counts = [(int(n), int(total)) for n, total in re.findall(r"ingest:[^\r\n]*?\b(\d+)/(\d+) \[", err)]
    assert counts[0] == (0, 13)  # every file, before any was read
    assert counts[-1] == (12, 12)  # the unreadable one dropped out of the total
    assert len({n for n, _ in counts if 0 < n < 12}) >= 3, err  # it moved before the end
    assert "chunks=" in err
    # the warning has a line of its own: the bar is cleared before it and drawn again after
    lines = re.split(r"[\r\n]", err)
    warning = [line for line in lines if "skipping" in line]
    assert warning == [f"WARNING m3retriever.ingest.sources: skipping {folder / 'doc05-bad.txt'}: not UTF-8 text (byte 0xe9) on line 1"]
