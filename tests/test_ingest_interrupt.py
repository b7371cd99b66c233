"""Ctrl-C during ``m3retriever ingest``: what was reported saved is in the store, whole, and
the same command resumes to the collection an uninterrupted run builds; writes are paced by
encoding time (a few seconds of work at most is lost), not by 256-document batches."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from m3retriever import Retriever, load_config
from m3retriever.cli import main
from m3retriever.ingest import IngestInterrupted, Ingestor
from m3retriever.ingest.sources import coerce_document, read_folder

pytestmark = pytest.mark.slow  # real child processes

N_FILES = 60

# The CLI in a child process, with the encoder slowed to 30 ms a chunk (a CPU running a real
# model) and writes paced at 0.4 s of encoding, so that the ingest is still running when the
# parent presses Ctrl-C.
CHILD = textwrap.dedent(
    """
    import signal, sys, time
    # Ctrl-C reaches the child even when the test runs where SIGINT is ignored (a background
    # job of a non-interactive shell), which a child would otherwise inherit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from m3retriever import branches
    from m3retriever.ingest import Ingestor

    Ingestor.write_seconds = 0.4
    encode = branches.EncoderSet.encode_document

    def slow(self, texts, lengths=None):
        time.sleep(0.03 * len(texts))
        return encode(self, texts, lengths)

    branches.EncoderSet.encode_document = slow
    from m3retriever.cli import main

    sys.exit(main(sys.argv[1:]))
    """
)


def _folder(root: Path, n: int = N_FILES) -> Path:
    root.mkdir()
    for i in range(n):
        words = " ".join(f"term{(i * 7 + j) % 89} item{i}" for j in range(30 + (i % 4) * 20))
        (root / f"doc{i:03d}.txt").write_text(f"Document {i}. {words}\n")
    return root


def _chunks_of(r: Retriever, folder: Path, doc_ids: set[str]) -> int:
    return sum(len(r._ingestor.chunk(coerce_document(d))) for d in read_folder(folder) if d.doc_id in doc_ids)


def _stored_doc_ids(r: Retriever) -> set[str]:
    return {p.payload["doc_id"] for p in r.store.scroll(r.config.collection, None)}


def _read_until(proc: subprocess.Popen, pattern: str, timeout: float) -> tuple[str, re.Match | None]:
    """Read the child's stderr until ``pattern`` matches it (or ``timeout``)."""
    seen = b""
    deadline = time.monotonic() + timeout
    fd = proc.stderr.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
            match = re.search(pattern, seen.decode(errors="replace"))
            if match:
                return seen.decode(errors="replace"), match
    return seen.decode(errors="replace"), None


def test_ctrl_c_mid_ingest_keeps_what_it_reports_and_the_same_command_resumes(tmp_path: Path, config_file: Path, capsys):
    folder = _folder(tmp_path / "corpus")
    argv = ["ingest", str(folder), "--config", str(config_file)]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        # the bar counts documents against the folder's file count, and moves before the end
        before, moved = _read_until(child, rf"ingest:.*?\b([1-9]\d*)/{N_FILES}\b", timeout=240)
        assert moved is not None, before
        assert int(moved.group(1)) < N_FILES
        child.send_signal(signal.SIGINT)
        out, rest = child.communicate(timeout=120)
    finally:
        child.kill()
    err = before + rest.decode()
    assert child.returncode == 130, err
    assert "Traceback" not in err
    last = err.rstrip("\n").split("\n")[-1]
    found = re.fullmatch(r"interrupted: (\d+) documents saved; run the same command to resume", last)
    assert found, err
    saved = int(found.group(1))
    assert 0 < saved < N_FILES

    with Retriever(load_config(str(config_file))) as r:
        stored = _stored_doc_ids(r)
        # every document reported saved is in the store, with all its chunks; nothing else is
        assert len(stored) == saved == r.info()["documents"]
        assert r.count() == _chunks_of(r, folder, stored)

    capsys.readouterr()
    assert main([*argv, "--quiet"]) == 0
    report = capsys.readouterr().out
    assert f"{N_FILES} documents ({N_FILES - saved} added, 0 updated, {saved} unchanged)" in report
    assert main([*argv, "--quiet", "--location", str(tmp_path / "clean")]) == 0
    with Retriever(load_config(str(config_file))) as r:
        resumed = r.count()
        assert r.info()["documents"] == N_FILES and resumed == _chunks_of(r, folder, _stored_doc_ids(r))
    with Retriever(load_config(str(config_file), location=str(tmp_path / "clean"))) as r:
        assert r.count() == resumed


def test_interrupt_between_writes_reports_exactly_the_documents_in_the_store(
    tmp_path: Path, make_retriever, monkeypatch: pytest.MonkeyPatch
):
    """Ctrl-C while the third write's chunks are encoded: the two writes before it are in the
    store and counted, the third is not; a re-run resumes to the uninterrupted result."""
    monkeypatch.setattr(Ingestor, "write_seconds", 0.0)  # one document a write
    monkeypatch.setattr(Ingestor, "first_write_chunks", 1)
    folder = _folder(tmp_path / "corpus", 8)
    r = make_retriever()
    encode = r.encoders.encode_document
    calls = []

    def ctrl_c_on_the_third_call(texts, lengths=None):
        calls.append(len(texts))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return encode(texts, lengths)

    r.encoders.encode_document = ctrl_c_on_the_third_call
    with pytest.raises(IngestInterrupted) as info:
        r.ingest_path(folder)
    assert isinstance(info.value, KeyboardInterrupt)
    assert (info.value.report.documents, info.value.report.added) == (2, 2)
    assert _stored_doc_ids(r) == {"doc000.txt", "doc001.txt"}
    assert r.count() == info.value.report.chunks_written == _chunks_of(r, folder, _stored_doc_ids(r))

    r.encoders.encode_document = encode
    resumed = r.ingest_path(folder)
    assert (resumed.skipped, resumed.added) == (2, 6)
    clean = make_retriever(location=str(tmp_path / "clean"))
    clean.ingest_path(folder)
    assert r.count() == clean.count() == _chunks_of(r, folder, _stored_doc_ids(r))


def test_a_batch_is_written_in_groups_of_a_few_seconds_of_encoding(tmp_path: Path, make_retriever, monkeypatch):
    """One batch of 12 documents, an encoder at 20 ms a chunk and writes of 0.1 s of encoding:
    several writes, each of whole documents, where a write per 256 documents made one."""
    monkeypatch.setattr(Ingestor, "write_seconds", 0.1)
    monkeypatch.setattr(Ingestor, "first_write_chunks", 4)
    r = make_retriever()
    encode = r.encoders.encode_document
    sizes: list[int] = []

    def slow(texts, lengths=None):
        sizes.append(len(texts))
        time.sleep(0.02 * len(texts))
        return encode(texts, lengths)

    r.encoders.encode_document = slow
    upserts: list[int] = []
    upsert = r.store.upsert

    def counted(name, points):
        upserts.append(len({p.payload["doc_id"] for p in points}))
        return upsert(name, points)

    r.store.upsert = counted
    folder = _folder(tmp_path / "corpus", 12)
    report = r.ingest_path(folder)
    assert report.added == 12 and r._ingestor.doc_batch >= 12
    assert len(upserts) >= 3 and sum(upserts) == 12
    # after the first write, each holds about 0.1 s of encoding (5 chunks) or one document
    biggest = max(len(r._ingestor.chunk(d)) for d in read_folder(folder))
    assert sizes[0] <= max(4, biggest) and all(n <= max(5, biggest) for n in sizes[1:]), sizes
