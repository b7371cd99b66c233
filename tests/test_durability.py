"""Crash safety of ingest and the embedded store's inter-process lock, with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from m3retriever import Retriever, StoreInUseError, load_config

N_DOCS = 120
KILL_AFTER = 70  # documents handed to ingest before the child kills itself


def _docs() -> list[dict]:
    docs = []
    for i in range(N_DOCS):
        words = " ".join(f"term{(i * 7 + j) % 97} item{i}" for j in range(10 + (i % 5) * 25))
        docs.append({"doc_id": f"doc-{i}", "text": f"Document {i}. {words}", "metadata": {"i": i}})
    return docs


CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from m3retriever import Retriever, load_config
    from m3retriever.ingest import Ingestor
    settings = json.loads(sys.argv[1])
    docs = json.loads(sys.argv[2])
    kill_after = int(sys.argv[3])
    r = Retriever(load_config(env={}, **settings))
    r._ingestor.doc_batch = 16

    def stream():
        for i, d in enumerate(docs):
            if i == kill_after:
                # die like a power cut: no cleanup, no flush, lock left to the kernel
                os.kill(os.getpid(), signal.SIGKILL)
            yield d

    r.ingest(stream())
    """
)


def _expected_chunks(r: Retriever, docs: list[dict]) -> int:
    from m3retriever.sources import coerce_document

    return sum(len(r._ingestor.chunk(coerce_document(d))) for d in docs)


def test_ingest_killed_midway_then_rerun_gives_exact_chunk_count(tmp_path: Path, tiny_settings: dict):
    settings = {**tiny_settings, "location": str(tmp_path / "store")}
    docs = _docs()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(settings), json.dumps(docs), str(KILL_AFTER)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]

    with Retriever(load_config(env={}, **settings)) as r:
        partial = r.count()
        # whole batches of 16 before the kill landed (the WAL replays them); the batch in
        # flight did not
        assert 0 < partial < _expected_chunks(r, docs)
        report = r.ingest(docs)
        assert report.skipped >= 16  # what survived the crash is not encoded again
        assert report.added + report.skipped == N_DOCS
        assert r.count() == _expected_chunks(r, docs)
        assert r.info()["documents"] == N_DOCS
        again = r.ingest(docs)
        assert again.skipped == N_DOCS and r.count() == _expected_chunks(r, docs)


def test_crash_between_upsert_and_stale_delete_is_repaired(tmp_path: Path, tiny_settings: dict, monkeypatch):
    """A changed document whose new chunks landed but whose stale chunks were not yet deleted
    (the process died in between) is rewritten on the next run, leaving no stale chunk."""
    settings = {**tiny_settings, "location": str(tmp_path / "store2")}
    long_doc = {"doc_id": "d", "text": " ".join(f"w{i}" for i in range(400))}
    short_doc = {"doc_id": "d", "text": " ".join(f"v{i}" for i in range(60))}
    with Retriever(load_config(env={}, **settings)) as r:
        r.ingest([long_doc])
        n_long = r.count()
        store = r.store

        def die(*args, **kwargs):
            raise KeyboardInterrupt("simulated crash before stale chunks are removed")

        monkeypatch.setattr(store, "delete_by_filter", die)
        with pytest.raises(KeyboardInterrupt):
            r.ingest([short_doc])
        monkeypatch.undo()
        n_short = _expected_chunks(r, [short_doc])
        assert r.count() == n_long  # new chunks overwrote the first ones; stale ones remain
        report = r.ingest([short_doc])
        assert report.skipped == 0 and report.chunks_deleted == n_long - n_short
        assert r.count() == n_short


LOCKER = textwrap.dedent(
    """
    import sys, time
    from m3retriever.store import open_store
    s = open_store(sys.argv[1])
    print("locked", flush=True)
    time.sleep(60)
    """
)


def test_second_process_gets_store_in_use_error(tmp_path: Path):
    loc = str(tmp_path / "locked")
    child = subprocess.Popen([sys.executable, "-c", LOCKER, loc], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        from m3retriever.store import open_store

        with pytest.raises(StoreInUseError, match="in use by another process"):
            open_store(loc)
    finally:
        child.kill()
        child.wait()
    # the kernel released the lock with the process: the store opens again
    s = open_store(loc)
    s.close()


def test_second_open_in_the_same_process_is_refused_until_closed(tmp_path: Path):
    from m3retriever.store import open_store

    loc = str(tmp_path / "same")
    first = open_store(loc)
    with pytest.raises(StoreInUseError):
        open_store(loc)
    first.close()
    open_store(loc).close()
