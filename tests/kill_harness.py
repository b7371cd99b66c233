"""The kill -9 harness: every write command of the embedded store run as a real child process
and killed mid-write (used by tests/test_durability_kill.py and tests/benchmarks/kill_table.py).

Method. Each write command (ingest, ingest --sync of a folder that changed since it was
ingested, delete, copy, restore into a new collection, restore
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kill_checks import Outcome, Tally, check_killed, check_rerun, read_collection

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
    from m3retriever.maintenance import snapshot
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
    folder: Path  # a folder ingested into the base store, then changed: what ingest --sync syncs
    queries: Path  # labelled queries for tune
    model: Path  # the ONNX export: the collection's encoders and add-branch's dense2 model


def build_world(root: Path, m3_onnx: Path) -> World:
    """The base store: documents d0-d15 in two ingests (so renormalize has stale BM25 weights),
    a snapshot of it plus d16-d19, the inputs of the commands."""
    from m3retriever import Retriever, load_config, open_collection
    from m3retriever.maintenance.snapshot import snapshot_collection

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
    with open_collection(load_config(env={}, location=str(extra), **settings), must_exist=True) as collection:
        snapshot_collection(collection, snap)
    shutil.rmtree(extra)
    folder = root / "folder"
    folder.mkdir()
    for i in range(12):
        (folder / f"f{i:02d}.md").write_text(f"# File {i}\n\n" + " ".join(f"word{(i * 5 + j) % 61}" for j in range(25 + 5 * (i % 4))))
    with Retriever(load_config(env={}, location=str(base), **settings)) as r:
        r.ingest_path(folder)
    for i in range(4):  # deleted, edited, added: the sync deletes, rewrites and writes
        (folder / f"f{i:02d}.md").unlink()
    (folder / "f04.md").write_text("# File 4, edited\n\nIts new text about otters and herons.")
    for i in range(12, 16):
        (folder / f"f{i:02d}.md").write_text(f"# File {i}\n\n" + " ".join(f"word{(i * 3 + j) % 61}" for j in range(40)))
    new_docs = root / "new.jsonl"
    new_docs.write_text("".join(json.dumps(_doc(i, 30 + 10 * (i % 5))) + "\n" for i in range(20, 44)))
    queries = root / "queries.jsonl"
    labels = [("term3 item2", ["d2"]), ("term10 item9", ["d9"]), ("Document 12", ["d12"])]
    queries.write_text("".join(json.dumps({"query": q, "relevant": d}) + "\n" for q, d in labels))
    return World(root, config, base, snap, new_docs, folder, queries, m3_onnx)


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
        lambda w, r: ["collection", "copy", "--config", str(w.config), "--from", str(r / "store"), "--to", str(r / "target"), "--batch", "16"],
        (("store", COLLECTION), ("target", COLLECTION)),
        False,
    ),
    Command(
        "restore (new collection)",
        lambda w, r: ["collection", "restore", *_cfg(w, r), "--collection", "restored", str(w.snapshot)],
        (("store", COLLECTION), ("store", "restored")),
        True,
    ),
    Command("restore --overwrite", lambda w, r: ["collection", "restore", *_cfg(w, r), "--overwrite", str(w.snapshot)], (("store", COLLECTION),), True),
    Command(
        "add-branch",
        lambda w, r: ["collection", "add-branch", *_cfg(w, r), "--dense2-model", str(w.model), "--dense2-encoder", "bge-m3-onnx"],
        (("store", COLLECTION),),
        True,
    ),
    Command("renormalize", lambda w, r: ["collection", "renormalize", *_cfg(w, r)], (("store", COLLECTION),), False),
    Command("defaults set", lambda w, r: ["collection", "defaults", "set", *_cfg(w, r), "rrf_k=17", "hnsw_ef=99"], (("store", COLLECTION),), True),
    Command(
        "tune --save",
        lambda w, r: [
            "tune", *_cfg(w, r), "--no-ingest", "--save", "--quiet", "--rrf-k", "5,50", "--weights", "1:1:1",
            "--prefetch", "20", "--rerank-depth", "10", "--rerank-weight", "0", "--rerank-top", "1", str(w.queries),
        ],
        (("store", COLLECTION),),
        True,
    ),
    Command("ingest --sync", lambda w, r: ["ingest", *_cfg(w, r), "--quiet", "--sync", str(w.folder)], (("store", COLLECTION),), False),
]


# ------------------------------------------------------------------------------------------
# runs


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
    # A kill can miss (a run with fewer write points than the clean one, a command done before
    # its timer): such runs are still checked, and more are tried, up to three per fault asked.
    for k in range(3 * kills):
        if tally.faults >= kills:
            break
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
