"""Reading an embedded collection's vectors and indexes into the OS page cache.

Right after a process opens a large on-disk collection (or after the page cache was dropped),
the first queries read the float vectors they rescore and the sparse index pages from disk.
:func:`read_into_cache` reads those files once, sequentially, so that later queries find them
in memory. It only reads: nothing is written, and files or segments that the optimizer removes
meanwhile are skipped.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

__all__ = ["CHUNK_BYTES", "read_files", "read_into_cache", "vector_files"]

logger = logging.getLogger(__name__)

CHUNK_BYTES = 4 << 20
"""Bytes read per call (the data is discarded)."""

_PARTS = ("vector_storage-", "vector_index-")
_PAYLOAD_PARTS = ("payload_storage", "payload_index")


def vector_files(shard_dir: Path, payloads: bool = False) -> list[Path]:
    """The files of every segment's vector storages and vector indexes, sorted.

    Args:
        shard_dir: The Edge shard directory of a collection (``<store>/<collection>``).
        payloads: Also the payload storages and indexes.
    """
    wanted = _PARTS + _PAYLOAD_PARTS if payloads else _PARTS
    found: list[Path] = []
    segments = shard_dir / "segments"
    try:
        entries = sorted(os.scandir(segments), key=lambda e: e.name)
    except FileNotFoundError:
        return found
    for segment in entries:
        try:
            parts = sorted(e.path for e in os.scandir(segment.path) if e.name.startswith(wanted) and e.is_dir())
        except (FileNotFoundError, NotADirectoryError):  # a segment removed meanwhile, or a file
            continue
        for part in parts:
            for root, dirs, files in os.walk(part):  # os.walk skips directories that vanish
                dirs.sort()
                found.extend(Path(root, f) for f in sorted(files))
    return found


def _read(path: Path, buf: bytearray) -> int:
    """Read one file to its end, discarding the data; 0 if it vanished."""
    total = 0
    try:
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                total += n
    except (FileNotFoundError, IsADirectoryError):
        pass
    return total


def read_files(paths: list[Path]) -> int:
    """Read each file to its end in :data:`CHUNK_BYTES` pieces, discarding the data; the bytes
    read (a file that vanished before or while it was read counts what was read of it)."""
    buf = bytearray(CHUNK_BYTES)
    return sum(_read(f, buf) for f in paths)


def read_into_cache(shard_dir: Path, name: str, payloads: bool = False) -> int:
    """Read a collection's vector storages and indexes (and payloads: ``payloads``) once; the
    bytes read.

    Args:
        shard_dir: The Edge shard directory of the collection.
        name: The collection's name (for the log line).
        payloads: Also the payloads (the returned hits' texts are read from them).
    """
    start = time.perf_counter()
    files = vector_files(shard_dir, payloads)
    total = read_files(files)
    seconds = time.perf_counter() - start
    logger.info("warm-up of %r: read %.1f MiB from %d files in %.2fs", name, total / 2**20, len(files), seconds)
    return total
