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

from m3retriever import Eq, Retriever, StoreInUseError, load_config

pytestmark = pytest.mark.slow  # real child processes

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
    from m3retriever.ingest.sources import coerce_document

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


def _words(prefix: str, n: int) -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


def _count_calls(store) -> dict:
    """Wrap the store's methods on the instance so that each call is counted."""
    calls: dict = {}
    for name in ("retrieve", "count", "count_by_value", "scroll", "upsert", "delete_ids", "delete_by_filter"):
        original = getattr(store, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args, **kwargs)

        setattr(store, name, counted)
    return calls


@pytest.mark.parametrize("location", ["edge", ":memory:"])
def test_unchanged_checks_cost_a_constant_number_of_store_calls_per_batch(tmp_path: Path, tiny_settings: dict, location: str):
    settings = {**tiny_settings, "location": str(tmp_path / "s") if location == "edge" else location}
    docs = [{"doc_id": f"d{i}", "text": _words(f"t{i}x", 5 + (i % 3) * 40)} for i in range(40)]
    with Retriever(load_config(env={}, **settings)) as r:
        r._ingestor.doc_batch = 16
        r.ingest(docs)
        n = r.count()
        calls = _count_calls(r.store)
        report = r.ingest(docs)
        # 3 batches: one retrieve of every chunk 0 and one grouped count each, nothing per document
        assert calls == {"retrieve": 3, "count_by_value": 3}
        assert report.skipped == 40 and r.count() == n


@pytest.mark.parametrize("location", ["edge", ":memory:"])
def test_changed_documents_in_one_batch_lose_exactly_their_stale_chunks(tmp_path: Path, tiny_settings: dict, location: str):
    """Documents that shrink, grow, keep their size or stay unchanged, in one batch: one count
    and one delete remove every stale chunk and nothing else."""
    settings = {**tiny_settings, "location": str(tmp_path / "s") if location == "edge" else location}
    before = {"shrinks": 300, "shrinks-more": 400, "grows": 20, "same-size": 100, "unchanged": 200, "other": 300}
    after = {"shrinks": 120, "shrinks-more": 10, "grows": 250, "same-size": 100, "unchanged": 200}
    with Retriever(load_config(env={}, **settings)) as r:
        r.ingest([{"doc_id": d, "text": _words("a", n)} for d, n in before.items()])
        new = [{"doc_id": d, "text": _words("a" if d == "unchanged" else "b", n)} for d, n in after.items()]
        chunks = {d["doc_id"]: _expected_chunks(r, [d]) for d in new}
        old = {d: r.count({"doc_id": d}) for d in before}
        calls = _count_calls(r.store)
        report = r.ingest(new)
        assert calls == {"retrieve": 1, "count_by_value": 1, "upsert": 1, "count": 1, "delete_by_filter": 1}
        assert (report.skipped, report.updated, report.added) == (1, 4, 0)
        assert report.chunks_deleted == sum(max(0, old[d] - chunks[d]) for d in chunks if d != "unchanged")
        for doc_id, n in chunks.items():
            stored = sorted(p.payload["chunk_index"] for p in r.store.scroll(r.config.collection, Eq("doc_id", doc_id)))
            assert stored == list(range(n)), doc_id
        assert r.count({"doc_id": "other"}) == old["other"]  # not in the batch: untouched


def test_crash_between_upsert_and_stale_delete_is_repaired_for_a_whole_batch(tmp_path: Path, tiny_settings: dict, monkeypatch):
    settings = {**tiny_settings, "location": str(tmp_path / "store3")}
    long_docs = [{"doc_id": f"d{i}", "text": _words(f"w{i}x", 300 + 50 * i)} for i in range(3)]
    short_docs = [{"doc_id": f"d{i}", "text": _words(f"v{i}x", 40 + 20 * i)} for i in range(3)]
    with Retriever(load_config(env={}, **settings)) as r:
        r.ingest(long_docs)
        n_long = r.count()

        def die(*args, **kwargs):
            raise KeyboardInterrupt("simulated crash before stale chunks are removed")

        monkeypatch.setattr(r.store, "delete_by_filter", die)
        with pytest.raises(KeyboardInterrupt):
            r.ingest(short_docs)
        monkeypatch.undo()
        assert r.count() == n_long
        n_short = _expected_chunks(r, short_docs)
        report = r.ingest(short_docs)
        assert report.skipped == 0 and report.updated == 3 and report.chunks_deleted == n_long - n_short
        assert r.count() == n_short
        assert r.ingest(short_docs).skipped == 3


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
