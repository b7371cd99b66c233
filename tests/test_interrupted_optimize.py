"""An optimization killed midway (out of memory, a crash) loses nothing, and what it left on
disk is removed the next time the collection is opened.

Qdrant Edge builds an optimized segment in ``<collection>/temp_segments`` and swaps it in only
when complete; it does not clear that folder on its next load, so a killed build kept a
partial segment as large as the collection's vectors (7.7 GB at 1M x 1024) for good.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from m3retriever.store import open_store
from m3retriever.store.directory import remove_stale_builds
from m3retriever.store.schema import DENSE, Branch, HybridQuery

N, DIM = 40_000, 96

# Writes N points, then optimizes (HNSW build) and reports when it starts; the test kills it.
BUILDER = textwrap.dedent(
    f"""
    import sys
    import numpy as np
    from m3retriever.store import open_store
    from m3retriever.store.schema import CollectionSpec, StoredPoint
    store = open_store(sys.argv[1])
    store.ensure_collection(CollectionSpec(name="c", dense_dim={DIM}, fingerprint={{"t": 1}}))
    rng = np.random.default_rng(0)
    for start in range(0, {N}, 2000):
        x = rng.standard_normal((2000, {DIM})).astype(np.float32)
        store.upsert("c", [StoredPoint(id=f"00000000-0000-4000-8000-{{start + i:012d}}", payload={{"i": start + i}},
                                       dense=x[i]) for i in range(2000)])
    store.flush("c")
    print("optimizing", flush=True)
    store.optimize("c")
    print("done", flush=True)
    """
)


def _temp_files(collection: Path) -> list[Path]:
    return [f for f in (collection / "temp_segments").rglob("*") if f.is_file()]


def test_a_killed_optimization_loses_nothing_and_its_leftovers_are_removed(tmp_path: Path):
    loc = tmp_path / "store"
    child = subprocess.Popen([sys.executable, "-c", BUILDER, str(loc)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "optimizing"
        deadline = time.monotonic() + 120
        while not _temp_files(loc / "c") and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert _temp_files(loc / "c"), "the optimization finished before it could be interrupted"
        child.kill()
    finally:
        child.kill()
        child.wait()
    left = sum(f.stat().st_size for f in _temp_files(loc / "c"))
    assert left > 0

    store = open_store(str(loc))
    try:
        assert store.count("c") == N  # nothing lost
        assert not _temp_files(loc / "c")  # the partial build is gone
        q = np.random.default_rng(1).standard_normal(DIM).tolist()
        hits = store.query("c", [HybridQuery(branches=(Branch(DENSE, q, 10),), limit=10)])[0]
        assert len(hits) == 10
        again = store.query("c", [HybridQuery(branches=(Branch(DENSE, q, 10),), limit=10, exact=True)])[0]
        assert [h.id for h in again] == [h.id for h in hits]
    finally:
        store.close()


def test_remove_stale_builds_reports_what_it_freed(tmp_path: Path):
    collection = tmp_path / "c"
    assert remove_stale_builds(collection) == 0  # no folder: nothing to do
    builder = collection / "temp_segments" / "segment_builder_x"
    builder.mkdir(parents=True)
    (builder / "a.dat").write_bytes(b"x" * 1000)
    (collection / "temp_segments" / "stray").write_bytes(b"y" * 24)
    assert remove_stale_builds(collection) == 1024
    assert list((collection / "temp_segments").iterdir()) == []
