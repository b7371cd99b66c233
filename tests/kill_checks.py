"""What the kill -9 harness (tests/kill_harness.py) checks: a collection read the way a user's
next command reads it, compared with its state before the command and after a clean run, and
the tally of what was lost, duplicated, mixed or left over."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

LEFTOVERS = (".m3r-replace-", ".m3r-old-", ".dense2-build", ".restore-", ".partial")


class WriteCommand(Protocol):
    """What the checks need of a command: its name, the (store folder, collection) pairs it
    writes, and whether it replaces a collection at once (all old or all new)."""

    name: str
    watched: tuple[tuple[str, str], ...]
    whole: bool


# ------------------------------------------------------------------------------------------
# what a collection holds, read the way a user's next command reads it


@dataclass
class Seen:
    """A collection as read after a run: its points and the metadata kept with it."""

    points: dict[str, tuple[dict[str, Any], dict[str, Any]]]  # id -> (payload, vectors)
    meta: dict[str, Any]


def read_collection(location: Path, name: str) -> Seen | None:
    """Open the store (finishing or rolling back a cut-short replace), then count, scroll and
    search the collection; ``None`` if it does not exist. Raises if any of that fails."""
    from m3retriever.store import open_store
    from m3retriever.store.schema import Branch, HybridQuery

    if not location.exists():
        return None
    store = open_store(str(location))
    try:
        if not store.has_collection(name):
            return None
        points = {p.id: (dict(p.payload), dict(p.vectors)) for p in store.scroll(name, with_vectors=True)}
        assert store.count(name) == len(points), f"{name}: count {store.count(name)} != {len(points)} scrolled"
        if points:
            pid, (_, vectors) = sorted(points.items())[0]
            hits = store.query(name, [HybridQuery((Branch("dense", vectors["dense"], 5),), 5, exact=True)])[0]
            assert hits and hits[0].id == pid, f"{name}: a search for a stored vector does not find it"
        meta = {k: v for k, v in store.metadata(name).items() if k not in ("index",)}
        return Seen(points, meta)
    finally:
        store.close()


def _same_vector(a: Any, b: Any, weights: bool) -> bool:
    if hasattr(a, "indices"):
        if list(a.indices) != list(b.indices):
            return False
        return not weights or np.allclose(a.values, b.values, atol=1e-5)
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return x.shape == y.shape and bool(np.allclose(x, y, atol=1e-5))


def same_point(a: tuple[dict[str, Any], dict[str, Any]], b: tuple[dict[str, Any], dict[str, Any]]) -> bool:
    """Payloads equal, vectors equal to 1e-5 (BM25 by its terms: its weights depend on the
    average document length when the batch was written)."""
    if a[0] != b[0] or a[1].keys() != b[1].keys():
        return False
    return all(_same_vector(v, b[1][k], weights=k != "bm25") for k, v in a[1].items())


def same_collection(a: Seen | None, b: Seen | None, *, lengths: bool = True) -> bool:
    """Same points and metadata (``lengths=False``: but for the BM25 length totals, which
    follow the batches a resumed ingest wrote)."""
    if a is None or b is None:
        return a is b
    if a.points.keys() != b.points.keys():
        return False
    skip = () if lengths else ("lengths", "tenant_lengths")
    meta_a, meta_b = ({k: _timeless(k, v) for k, v in m.items() if k not in skip} for m in (a.meta, b.meta))
    return meta_a == meta_b and all(same_point(p, b.points[i]) for i, p in a.points.items())


def _timeless(key: str, value: Any) -> Any:
    """A metadata value without the times it records (the ingest roots log when each folder
    was ingested: a re-run's time differs from a clean run's, its folders may not)."""
    if key == "ingest_roots" and isinstance(value, list):
        return [{k: v for k, v in root.items() if k != "at"} for root in value if isinstance(root, dict)]
    return value


@dataclass
class Outcome:
    """One run of a command: how it ended and what its folders held (per watched pair)."""

    rc: int
    points: int  # write points passed (clean runs; killed runs count up to the kill)
    window: float  # seconds from the first write point to the exit (clean runs)
    stderr: str
    seen: dict[tuple[str, str], Seen | None] = field(default_factory=dict)
    entries: dict[str, set[str]] = field(default_factory=dict)  # folder -> names in it


# ------------------------------------------------------------------------------------------
# checks and their tally


@dataclass
class Tally:
    """What the faults injected into one command did (the columns of the table)."""

    command: str
    faults: int = 0  # runs killed by SIGKILL
    lost: int = 0  # runs after which points kept by both versions were missing
    duplicated: int = 0  # runs after which a point was there twice or under a foreign id
    unopenable: int = 0  # runs after which a store did not open, count, scroll or search
    mixed: int = 0  # runs that left a collection neither as before nor as a clean run leaves it
    leftovers: int = 0  # runs after whose re-run the folders held more than a clean run's
    totals_off: int = 0  # ingest re-runs ending with BM25 length totals unlike a clean run's (noted, allowed)
    problems: list[str] = field(default_factory=list)

    def add(self, kind: str, text: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.problems.append(f"{self.command}: {kind}: {text}")


def _chunk_keys(seen: Seen) -> list[tuple[Any, Any]]:
    return [(p.get("doc_id"), p.get("chunk_index")) for p, _ in seen.points.values()]


def check_killed(cmd: WriteCommand, before: Outcome, clean: Outcome, killed: Outcome, tally: Tally, how: str) -> None:
    """The state a kill left, against the states before and after a clean run."""
    for pair, now in killed.seen.items():
        old, new = before.seen[pair], clean.seen[pair]
        if cmd.whole:
            if not (same_collection(now, old) or same_collection(now, new)):
                kind = "lost" if old is not None and (now is None or not now.points) else "mixed"
                tally.add(kind, f"{how}: {pair} is neither as before nor as after a clean run")
            continue
        if now is None:
            if old is not None:
                tally.add("lost", f"{how}: {pair} is gone")
            continue
        olds, news = (old.points if old else {}), (new.points if new else {})
        missing = (olds.keys() & news.keys()) - now.points.keys()
        if missing:
            tally.add("lost", f"{how}: {pair} lost {len(missing)} points kept by both versions")
        keys = _chunk_keys(now)
        if now.points.keys() - olds.keys() - news.keys() or len(set(keys)) != len(keys):
            tally.add("duplicated", f"{how}: {pair} holds a chunk twice or under a foreign id")
        wrong = [i for i, p in now.points.items()
                 if not any(i in v and same_point(p, v[i]) for v in (olds, news))]
        if wrong:
            tally.add("mixed", f"{how}: {pair}: {len(wrong)} points equal neither version, e.g. {wrong[0]}")


def check_rerun(cmd: WriteCommand, clean: Outcome, killed: Outcome, final: Outcome, tally: Tally, how: str) -> None:
    """The same command run again to completion: the clean run's collections and folders."""
    refused_done = final.rc != 0 and "--overwrite" in final.stderr and all(
        same_collection(killed.seen[p], clean.seen[p]) for p in clean.seen
    )  # restore into a new collection that the killed run had finished: refused, nothing to do
    if final.rc != 0 and not refused_done:
        tally.add("mixed", f"{how}: the re-run failed ({final.rc}): {final.stderr.strip()[-600:]}")
    for pair, want in clean.seen.items():
        got = final.seen[pair]
        if got is None or want is None:
            if got is not want:
                tally.add("lost", f"{how}: after the re-run {pair} is {got and len(got.points)} vs {want and len(want.points)}")
            continue
        if want.points.keys() - got.points.keys():
            tally.add("lost", f"{how}: after the re-run {pair} lacks {len(want.points.keys() - got.points.keys())} points")
        if got.points.keys() - want.points.keys():
            tally.add("duplicated", f"{how}: after the re-run {pair} has {len(got.points.keys() - want.points.keys())} extra points")
        if not same_collection(got, want, lengths=not cmd.name.startswith("ingest")):  # ingest, ingest --sync
            tally.add("mixed", f"{how}: after the re-run {pair} differs from a clean run")
        elif not same_collection(got, want):
            # A kill between a group's upsert and the update of the totals: the re-run skips
            # the stored documents, whose lengths stay uncounted until `renormalize`.
            tally.totals_off += 1
    for folder, names in final.entries.items():
        extra = {n for n in names - clean.entries[folder]} | {n for n in names if any(m in n for m in LEFTOVERS)}
        if extra:
            tally.add("leftovers", f"{how}: {folder} holds {sorted(extra)} after the re-run")
