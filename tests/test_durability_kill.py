"""kill -9 during every write command of the embedded store, with real child processes.

Method. Each write command (ingest, delete, copy, restore into a new collection, restore
--overwrite, add-branch, renormalize, ``defaults set``, ``tune --save``) runs as the real CLI in
a child process (``python -c CHILD <m3retriever arguments>``), on a fresh copy of one small
store built once per module (the tiny random BGE-M3 as an int8 ONNX export, profile
``bge-m3-cpu``, BM25 on, no reranker; the same export is add-branch's ``dense2`` model). The child counts its
*write points*: every engine write, flush, optimize and collection creation of the embedded
store, and every ``os.replace`` / ``rename`` / ``unlink`` / ``mkdir`` / ``rmdir``,
``shutil.rmtree`` and ``Path.write_text`` on a path inside the stores or the snapshot folder.

1. A clean run of the command (no kill) gives the expected result, its number of write points
   and the time from its first write point to its exit (its write window).
2. Each fault is a real SIGKILL, at a seeded random point, in one of two ways: the child kills
   itself just before its N-th write point (N uniform in 1..count; deterministic, every step of
   a replace can be hit), or the parent kills it after a uniform random delay within the write
   window, counted from the child's first write point (lands inside a write: a half-written
   WAL entry, file or rename sequence).
3. After the kill, every store involved must open (``open_store``, which finishes a decided
   replace or deletes an unfinished build), count, scroll and answer a search, and each
   collection must hold, for the commands that write point by point (ingest, delete,
   renormalize, copy), only points equal to their version before the command or after a clean
   run (none lost from those kept by both); for those that replace a whole collection or its
   metadata (restore, restore --overwrite, add-branch, defaults set, tune --save), exactly the
   state before or the state after a clean run: all old or all new, never a mix, never empty.
4. The same command is run again to completion: the collections then equal the clean run's
   (vectors compared to 1e-5; BM25 vector weights, which depend on the average length at the
   time a batch was written, are compared by their terms), and the store folders hold exactly
   the entries a clean run leaves (no ``.m3r-replace-*``, ``.m3r-old-*``, ``*.dense2-build*``,
   ``.restore-*`` or ``*.partial``).

``tests/benchmarks/kill_table.py`` runs the same harness with more faults per command and prints
the table of docs/reliability.md ("Killed mid-write").
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

CHILD = textwrap.dedent(
    """
    import atexit, json, os, pathlib, shutil, signal, sys, time
    roots = [os.path.realpath(p) for p in os.environ["KILL_WATCH"].split(os.pathsep)]
    kill_at = int(os.environ.get("KILL_AT", "0"))
    report = os.environ["KILL_REPORT"]
    seen = {"n": 0, "first": None}

    def point(path=None):
        if path is not None:
            try:
                p = os.path.realpath(os.fspath(path))
            except TypeError:
                return
            if not any(p == r or p.startswith(r + os.sep) for r in roots):
                return
        seen["n"] += 1
        if seen["first"] is None:
            seen["first"] = time.monotonic()
            open(report + ".writing", "w").close()
        if seen["n"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # a power cut: no cleanup, no flush

    def on_path(owner, attr):
        original = getattr(owner, attr)
        def counted(p, *args, **kwargs):
            point(p)
            return original(p, *args, **kwargs)
        setattr(owner, attr, counted)

    def on_call(owner, attr):
        original = getattr(owner, attr)
        def counted(*args, **kwargs):
            point()
            return original(*args, **kwargs)
        setattr(owner, attr, counted)

    for attr in ("replace", "rename", "unlink", "remove", "mkdir", "rmdir"):
        on_path(os, attr)
    on_path(shutil, "rmtree")
    on_path(pathlib.Path, "write_text")
    from m3retriever import snapshot
    from m3retriever.store.edge import EdgeStore
    for attr in ("_update", "_create", "flush", "optimize"):
        on_call(EdgeStore, attr)
    on_call(snapshot, "_copy_sparse")

    @atexit.register
    def done():
        window = time.monotonic() - seen["first"] if seen["first"] else 0.0
        pathlib.Path(report).write_text(json.dumps({"points": seen["n"], "window": window}))

    from m3retriever.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)

LEFTOVERS = (".m3r-replace-", ".m3r-old-", ".dense2-build", ".restore-", ".partial")
SETTINGS: dict[str, Any] = {
    "profile": "bge-m3-cpu", "bm25": True, "reranker": "none", "device": "cpu",
    "batch_size": 8, "max_length": 64, "chunk_tokens": 48, "chunk_overlap": 8,
}
COLLECTION = "docs"


def _doc(i: int, words: int) -> dict[str, Any]:
    text = " ".join(f"term{(i * 7 + j) % 89} item{i}" for j in range(words))
    return {"doc_id": f"d{i}", "text": f"Document {i}. {text}", "metadata": {"i": i}}


# ------------------------------------------------------------------------------------------
# the world: one base store, built once, copied for every run


@dataclass
class World:
    """Files shared by every run: the base store, a snapshot, inputs, models, the config."""

    root: Path
    config: Path
    base: Path  # the store every run starts from (a copy of it)
    snapshot: Path  # of the base collection with extra documents (restore --overwrite differs)
    new_docs: Path  # JSONL ingested by the ingest command
    queries: Path  # labelled queries for tune
    model: Path  # the ONNX export: the collection's encoders and add-branch's dense2 model


def build_world(root: Path, m3_onnx: Path) -> World:
    """The base store: documents d0-d15 in two ingests (so renormalize has stale BM25 weights),
    a snapshot of it plus d16-d19, the inputs of the commands."""
    from m3retriever import Retriever, load_config
    from m3retriever.snapshot import snapshot_collection

    root.mkdir(parents=True, exist_ok=True)
    settings = {**SETTINGS, "dense_model": str(m3_onnx), "collection": COLLECTION}
    config = root / "m3r.toml"
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    base, extra = root / "base", root / "extra"
    with Retriever(load_config(env={}, location=str(base), **settings)) as r:
        r.ingest([_doc(i, 20) for i in range(8)])
        r.ingest([_doc(i, 90) for i in range(8, 16)])
    shutil.copytree(base, extra)
    with Retriever(load_config(env={}, location=str(extra), **settings)) as r:
        r.ingest([_doc(i, 40) for i in range(16, 20)])
    snap = root / "snaps" / "extra.m3rsnap"
    snap.parent.mkdir()
    snapshot_collection(str(extra), COLLECTION, snap)
    shutil.rmtree(extra)
    new_docs = root / "new.jsonl"
    new_docs.write_text("".join(json.dumps(_doc(i, 30 + 10 * (i % 5))) + "\n" for i in range(20, 44)))
    queries = root / "queries.jsonl"
    labels = [("term3 item2", ["d2"]), ("term10 item9", ["d9"]), ("Document 12", ["d12"])]
    queries.write_text("".join(json.dumps({"query": q, "relevant": d}) + "\n" for q, d in labels))
    return World(root, config, base, snap, new_docs, queries, m3_onnx)


# ------------------------------------------------------------------------------------------
# commands: the CLI arguments, the (location, collection) pairs they write, how they may fail


@dataclass(frozen=True)
class Command:
    """One write command: ``args(world, run)`` gives its CLI arguments for the run folder."""

    name: str
    args: Callable[[World, Path], list[str]]
    watched: tuple[tuple[str, str], ...]  # (store folder in the run, collection)
    whole: bool  # True: replaces the collection or its metadata at once (all old or all new)


def _cfg(w: World, run: Path, *extra: str) -> list[str]:
    return ["--config", str(w.config), "--location", str(run / "store"), *extra]


COMMANDS = [
    Command("ingest", lambda w, r: ["ingest", *_cfg(w, r), "--quiet", str(w.new_docs)], (("store", COLLECTION),), False),
    Command("delete", lambda w, r: ["delete", *_cfg(w, r), "--filter", '{"i": {"lt": 10}}'], (("store", COLLECTION),), False),
    Command(
        "copy",
        lambda w, r: ["copy", "--config", str(w.config), "--from", str(r / "store"), "--to", str(r / "target"), "--batch", "16"],
        (("store", COLLECTION), ("target", COLLECTION)),
        False,
    ),
    Command(
        "restore (new collection)",
        lambda w, r: ["restore", *_cfg(w, r), "--collection", "restored", str(w.snapshot)],
        (("store", COLLECTION), ("store", "restored")),
        True,
    ),
    Command("restore --overwrite", lambda w, r: ["restore", *_cfg(w, r), "--overwrite", str(w.snapshot)], (("store", COLLECTION),), True),
    Command(
        "add-branch",
        lambda w, r: ["add-branch", *_cfg(w, r), "--dense2-model", str(w.model), "--dense2-encoder", "bge-m3-onnx"],
        (("store", COLLECTION),),
        True,
    ),
    Command("renormalize", lambda w, r: ["renormalize", *_cfg(w, r)], (("store", COLLECTION),), False),
    Command("defaults set", lambda w, r: ["defaults", "set", *_cfg(w, r), "rrf_k=17", "hnsw_ef=99"], (("store", COLLECTION),), True),
    Command(
        "tune --save",
        lambda w, r: [
            "tune", *_cfg(w, r), "--no-ingest", "--save", "--quiet", "--rrf-k", "5,50", "--weights", "1:1:1",
            "--prefetch", "20", "--rerank-depth", "10", "--rerank-weight", "0", "--rerank-top", "1", str(w.queries),
        ],
        (("store", COLLECTION),),
        True,
    ),
]


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
    meta_a, meta_b = ({k: v for k, v in m.items() if k not in skip} for m in (a.meta, b.meta))
    return meta_a == meta_b and all(same_point(p, b.points[i]) for i, p in a.points.items())


# ------------------------------------------------------------------------------------------
# runs


@dataclass
class Outcome:
    """One run of a command: how it ended and what its folders held (per watched pair)."""

    rc: int
    points: int  # write points passed (clean runs; killed runs count up to the kill)
    window: float  # seconds from the first write point to the exit (clean runs)
    stderr: str
    seen: dict[tuple[str, str], Seen | None] = field(default_factory=dict)
    entries: dict[str, set[str]] = field(default_factory=dict)  # folder -> names in it


def run_command(world: World, cmd: Command, run: Path, *, kill_at: int = 0, kill_after: float | None = None) -> Outcome:
    """Run ``cmd`` in a child on the run folder; SIGKILL it before its ``kill_at``-th write point
    (it does that itself) or ``kill_after`` seconds after its first one (the parent does)."""
    report, writing = run / "report.json", run / "report.json.writing"
    for f in (report, writing):
        f.unlink(missing_ok=True)
    watch = os.pathsep.join(str(p) for p in (run / "store", run / "target", world.snapshot.parent))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1", "KILL_WATCH": watch,
           "KILL_AT": str(kill_at), "KILL_REPORT": str(report), "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *cmd.args(world, run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        while proc.poll() is None and not writing.exists():
            time.sleep(0.002)
        time.sleep(kill_after)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=600)
    counted = json.loads(report.read_text()) if report.exists() else {"points": 0, "window": 0.0}
    return Outcome(proc.returncode, counted["points"], counted["window"], stderr)


def observe(world: World, cmd: Command, run: Path, outcome: Outcome) -> Outcome:
    """Open and read every watched collection, and list the run's store folders and the
    snapshot folder."""
    for folder, name in cmd.watched:
        outcome.seen[(folder, name)] = read_collection(run / folder, name)
    folders = {f: run / f for f, _ in cmd.watched} | {"snaps": world.snapshot.parent}
    for key, where in folders.items():
        outcome.entries[key] = {p.name for p in where.iterdir()} if where.exists() else set()
    return outcome


def fresh_run(world: World, run: Path) -> Path:
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    shutil.copytree(world.base, run / "store")
    return run


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


def check_killed(cmd: Command, before: Outcome, clean: Outcome, killed: Outcome, tally: Tally, how: str) -> None:
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


def check_rerun(cmd: Command, clean: Outcome, killed: Outcome, final: Outcome, tally: Tally, how: str) -> None:
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
        if not same_collection(got, want, lengths=cmd.name != "ingest"):
            tally.add("mixed", f"{how}: after the re-run {pair} differs from a clean run")
        elif not same_collection(got, want):
            # A kill between a group's upsert and the update of the totals: the re-run skips
            # the stored documents, whose lengths stay uncounted until `renormalize`.
            tally.totals_off += 1
    for folder, names in final.entries.items():
        extra = {n for n in names - clean.entries[folder]} | {n for n in names if any(m in n for m in LEFTOVERS)}
        if extra:
            tally.add("leftovers", f"{how}: {folder} holds {sorted(extra)} after the re-run")


# ------------------------------------------------------------------------------------------
# the harness


def baseline(world: World, cmd: Command, work: Path) -> tuple[Outcome, Outcome]:
    """The watched collections before the command, and after a clean run of it."""
    run = fresh_run(world, work / "clean")
    before = observe(world, cmd, run, Outcome(0, 0, 0.0, ""))
    clean = observe(world, cmd, run, run_command(world, cmd, run))
    assert clean.rc == 0, f"{cmd.name}: the clean run failed: {clean.stderr[-2000:]}"
    assert clean.points > 0, f"{cmd.name}: the clean run passed no write point"
    return before, clean


def inject(world: World, cmd: Command, work: Path, kills: int, seed: int) -> Tally:
    """``kills`` SIGKILLs at seeded random points of ``cmd`` (alternately at a write point and
    at a random time in the write window), each checked after the kill and after a re-run."""
    rng = random.Random(f"{seed}-{cmd.name}")
    before, clean = baseline(world, cmd, work)
    tally = Tally(cmd.name)
    for k in range(kills):
        run = fresh_run(world, work / f"kill{k}")
        if k % 2 == 0:
            at = rng.randint(1, clean.points)
            how, outcome = f"killed before write point {at}/{clean.points}", run_command(world, cmd, run, kill_at=at)
        else:
            delay = rng.uniform(0.0, clean.window)
            how, outcome = f"killed {delay:.3f}s into its {clean.window:.3f}s of writes", run_command(world, cmd, run, kill_after=delay)
        if outcome.rc != -signal.SIGKILL:
            assert outcome.rc == 0, f"{cmd.name}: {how}: failed without the kill: {outcome.stderr[-2000:]}"
            how += " (finished first)"
        else:
            tally.faults += 1
        try:
            killed = observe(world, cmd, run, outcome)
        except Exception as exc:  # noqa: BLE001 - an unopenable store is what is counted here
            tally.add("unopenable", f"{how}: {type(exc).__name__}: {exc}")
            continue
        check_killed(cmd, before, clean, killed, tally, how)
        final = observe(world, cmd, run, run_command(world, cmd, run))
        check_rerun(cmd, clean, killed, final, tally, how)
        shutil.rmtree(run)
    return tally


# ------------------------------------------------------------------------------------------
# the tests

KILLS = 2  # per command here; tests/benchmarks/kill_table.py runs more
SEED = 20240607


@pytest.fixture(scope="module")
def world(tiny_bge_m3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> World:
    from m3retriever.export import export_onnx

    onnx = export_onnx(str(tiny_bge_m3_path), tmp_path_factory.mktemp("onnx") / "m3-int8", int8=True)
    return build_world(tmp_path_factory.mktemp("kill-world"), Path(onnx))


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.name for c in COMMANDS])
def test_kill_9_mid_write_leaves_old_or_new_and_a_rerun_converges(world: World, cmd: Command, tmp_path: Path) -> None:
    tally = inject(world, cmd, tmp_path, KILLS, SEED)
    assert tally.faults >= 1, f"{cmd.name}: no run was killed"
    assert not tally.problems, "\n".join(tally.problems)


def test_the_checks_see_a_mix_a_loss_and_a_leftover() -> None:
    """The harness itself: a collection half old and half new, one missing a kept point, and a
    folder with a build left over are each counted."""
    old = {f"p{i}": ({"doc_id": f"d{i}", "chunk_index": 0, "v": 1}, {"dense": [1.0, float(i)]}) for i in range(4)}
    new = {k: ({**p, "v": 2}, v) for k, (p, v) in old.items()}
    pair = ("store", COLLECTION)

    def outcome(points: dict[str, Any] | None, entries: set[str]) -> Outcome:
        seen = Seen(points, {"search_defaults": {}}) if points is not None else None
        return Outcome(0, 0, 0.0, "", {pair: seen}, {"store": entries})

    before, clean = outcome(old, {"docs"}), outcome(new, {"docs"})
    half = {**dict(list(old.items())[:2]), **dict(list(new.items())[2:])}
    whole = Command("replace", COMMANDS[4].args, (pair,), True)
    pointwise = Command("write", COMMANDS[0].args, (pair,), False)
    tally = Tally("t")
    check_killed(whole, before, clean, outcome(half, {"docs"}), tally, "half")
    check_killed(pointwise, before, clean, outcome(half, {"docs"}), tally, "half")  # allowed point by point
    check_killed(pointwise, before, clean, outcome(dict(list(new.items())[1:]), {"docs"}), tally, "one gone")
    check_killed(whole, before, clean, outcome({}, {"docs"}), tally, "emptied")
    check_rerun(whole, clean, clean, outcome(new, {"docs", ".m3r-replace-docs"}), tally, "left")
    assert (tally.mixed, tally.lost, tally.leftovers, tally.duplicated) == (1, 2, 1, 0), tally.problems
