"""Replacing a collection of the embedded store atomically, and finishing an interrupted replace.

Every write that replaces a whole collection (restore, restore over an existing collection,
adding a branch) goes through here, in the same order:

1. **build aside**: the new shard and metadata file are written to
   ``<store>/.m3r-replace-<name>/`` (``shard/`` and ``meta.json``), a folder no collection name
   can reach (names start with a letter or digit);
2. **verify**: the caller opens the new shard from there and checks it (points, checksums,
   fingerprint); nothing else has changed yet;
3. **journal**: ``journal.json`` is written into that folder (atomically, then synced): from
   here on the replace is decided and is finished by whoever opens the store next;
4. **swap**: the live metadata file and shard move to ``<store>/.m3r-old-<name>/``, the new
   ones move into place (metadata file last: its presence marks a complete collection); each
   move is a rename inside the store's directory, done only if its source is still there, so a
   swap killed at any point is finished by running the same steps again;
5. **clean up**: the old version is deleted, then the build folder with its journal.

A build folder without a journal is an unfinished build: the next opener deletes it (the
original was never touched). :func:`recover` runs when an embedded store is opened, under its
lock, before any collection loads.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from m3retriever.store.collection_names import path_in

__all__ = ["STAGING_PREFIX", "staging_dir", "commit", "recover", "is_pending"]

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".m3r-replace-"
OLD_PREFIX = ".m3r-old-"
JOURNAL = "journal.json"
SHARD = "shard"
META = "meta.json"
META_SUFFIX = ".m3r.json"


def staging_dir(root: Path, name: str) -> Path:
    """A fresh, empty build folder for a new version of collection ``name``.

    A build folder left by an earlier attempt is deleted first if it holds no journal (an
    unfinished build); one with a journal is finished first (the store does that on opening,
    so it is not expected here).
    """
    staging = path_in(root, STAGING_PREFIX + name)
    if (staging / JOURNAL).exists():
        _roll_forward(root, name)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    return staging


def commit(root: Path, name: str) -> None:
    """Record that the verified build of ``name`` replaces it, then swap it in and clean up.

    Call only once the build folder's ``shard/`` and ``meta.json`` are complete and verified.
    """
    staging = path_in(root, STAGING_PREFIX + name)
    for part in (SHARD, META):
        if not (staging / part).exists():  # pragma: no cover - a caller's bug, not a user's
            raise RuntimeError(f"the build of {name!r} has no {part}; nothing swapped")
    tmp = staging / (JOURNAL + ".tmp")
    tmp.write_text(json.dumps({"replace": name}))
    _fsync(tmp)
    os.replace(tmp, staging / JOURNAL)
    _fsync_dir(staging)
    _roll_forward(root, name)


def is_pending(root: Path, name: str) -> bool:
    """Whether a decided replace of ``name`` has not finished yet."""
    return (path_in(root, STAGING_PREFIX + name) / JOURNAL).exists()


def recover(root: Path) -> list[str]:
    """Finish every decided replace under ``root`` and delete every unfinished build; the
    names of the collections whose replace was finished."""
    finished = []
    for entry in sorted(root.glob(STAGING_PREFIX + "*")):
        name = entry.name[len(STAGING_PREFIX) :]
        if (entry / JOURNAL).exists():
            logger.warning("finishing the interrupted replace of collection %r in %s", name, root)
            _roll_forward(root, name)
            finished.append(name)
        else:
            logger.warning("deleting an unfinished build of collection %r in %s (the collection is as it was)", name, root)
            shutil.rmtree(entry, ignore_errors=True)
    for entry in sorted(root.glob(OLD_PREFIX + "*")):  # only left if a clean-up was killed
        if not (root / (STAGING_PREFIX + entry.name[len(OLD_PREFIX) :]) / JOURNAL).exists():
            shutil.rmtree(entry, ignore_errors=True)
    return finished


def _roll_forward(root: Path, name: str) -> None:
    staging = path_in(root, STAGING_PREFIX + name)
    old = path_in(root, OLD_PREFIX + name)
    live_shard, live_meta = path_in(root, name), path_in(root, name, META_SUFFIX)
    old.mkdir(exist_ok=True)
    # Each move only if its source is there: re-running after a kill at any point is safe.
    if (staging / META).exists() and live_meta.exists():
        os.replace(live_meta, old / META)  # first: the collection reads as incomplete meanwhile
    if (staging / SHARD).exists() and live_shard.exists():
        os.replace(live_shard, old / SHARD)
    if (staging / SHARD).exists():
        os.replace(staging / SHARD, live_shard)
    if (staging / META).exists():
        os.replace(staging / META, live_meta)  # last: marks the new collection complete
    _fsync_dir(root)
    shutil.rmtree(old, ignore_errors=True)
    (staging / JOURNAL).unlink(missing_ok=True)  # the decision is carried out
    shutil.rmtree(staging, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        _fsync(path)
    except OSError:  # pragma: no cover - directories cannot be synced on every platform
        logger.debug("could not sync the directory %s", path, exc_info=True)
