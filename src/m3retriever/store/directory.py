"""The embedded store's directory: creating it, and the inter-process lock on it.

The lock is an OS file lock on ``<path>/.m3retriever.lock``: Edge takes none without its WAL
and only a WAL lock with it, and a second user should get a clear :class:`StoreInUseError`.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import IO

from m3retriever.errors import StoreError, StoreInUseError

__all__ = ["DirLock", "file_in_the_way", "in_use_message", "remove_stale_builds", "store_dir"]

logger = logging.getLogger(__name__)


def in_use_message(directory: Path, why: str) -> str:
    return (
        f"the store at {directory} is in use by another process or another open Retriever "
        f"({why}). Close the other user first, or point this one at a Qdrant server by URL to "
        "share a collection."
    )


class DirLock:
    """An exclusive, non-blocking advisory lock on a file (released when closed or on exit).

    Raises:
        StoreInUseError: if another process (or another open store in this one) holds it.
        StoreError: if the lock file cannot be opened or locked, naming the path and the fix.
    """

    _ATTEMPTS = 5

    def __init__(self, path: Path) -> None:
        self.path = path
        for _ in range(self._ATTEMPTS):
            fh = self._open()
            self._acquire(fh)
            if self._is_current(fh):
                break
            # Deleted or replaced between our open and our lock: we hold a lock nobody else
            # will see. Drop it and lock the file that is there now.
            fh.close()
        else:
            raise StoreError(
                f"the lock file {path} was deleted or replaced {self._ATTEMPTS} times while this "
                "process was locking it; stop whatever removes .m3retriever.lock (never delete "
                "it while the store is in use) and retry"
            )
        self._fh = fh
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
        except OSError:  # the pid is informational; the lock is what matters
            logger.debug("could not write the pid into %s", path, exc_info=True)

    def _open(self) -> IO[str]:
        try:
            return open(self.path, "a+")  # noqa: SIM115 - held for the store's lifetime
        except PermissionError:
            raise StoreError(
                f"cannot create or open the lock file {self.path}: permission denied. The "
                "embedded store writes into its directory: make "
                f"{self.path.parent} writable by this user, or pick a writable --location "
                "(M3R_LOCATION)"
            ) from None
        except OSError as exc:
            raise StoreError(
                f"cannot create or open the lock file {self.path} ({exc.strerror or exc}); "
                "remove whatever is at that path, or pick another --location (M3R_LOCATION)"
            ) from None

    def _acquire(self, fh: IO[str]) -> None:
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.close()
            raise StoreInUseError(
                in_use_message(self.path.parent, "lock file .m3retriever.lock is held")
            ) from exc
        except ImportError:  # pragma: no cover - non-POSIX
            import msvcrt

            try:
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            except OSError as exc:
                fh.close()
                raise StoreInUseError(
                    in_use_message(self.path.parent, "lock file .m3retriever.lock is held")
                ) from exc
        except OSError as exc:
            fh.close()
            raise StoreError(
                f"cannot lock {self.path} ({exc.strerror or exc}); the file system may not "
                "support locks: put the store on a local disk, or use a Qdrant server by URL"
            ) from None

    def _is_current(self, fh: IO[str]) -> bool:
        """Whether ``self.path`` still names the file we locked."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fh.fileno())
        return (held.st_ino, held.st_dev) == (now.st_ino, now.st_dev)

    def release(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def file_in_the_way(where: Path) -> StoreError | None:
    """The error for a store location that is a file or lies under one (``None``: neither);
    creates nothing."""
    if where.exists() and not where.is_dir():
        return StoreError(
            f"the store location {where} is a file, not a directory; pass a directory for the "
            "embedded store (created if missing), ':memory:' or a Qdrant URL"
        )
    blocker = next((a for a in where.parents if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        return StoreError(
            f"cannot create the store directory {where}: {blocker} is a file, not "
            "a directory; pass a location whose parent folders are directories"
        )
    return None


def store_dir(path: str | os.PathLike[str]) -> Path:
    """Resolve and create the directory of an embedded store.

    Raises:
        StoreError: if it is a file, lies under a file, or cannot be created; naming the path
            and the fix.
    """
    where = Path(path).expanduser().resolve()
    try:
        where.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise file_in_the_way(where) or StoreError(
            f"cannot create the store directory {where}: a parent is a file, not a directory; pass "
            "a location whose parent folders are directories"
        ) from None
    except PermissionError as exc:
        raise StoreError(
            f"cannot create the store directory {where}: permission denied on "
            f"{exc.filename or where}; pick a writable --location (M3R_LOCATION) or fix the "
            "permissions"
        ) from None
    except OSError as exc:
        raise StoreError(
            f"cannot create the store directory {where} ({exc.strerror or exc}); pick another "
            "--location (M3R_LOCATION)"
        ) from None
    return where


def remove_stale_builds(collection_dir: Path) -> int:
    """Delete what a killed optimization left in a collection's ``temp_segments``; the bytes
    freed.

    Qdrant Edge builds an optimized segment there and swaps it in only when complete, and does
    not clear the folder when it next loads the collection: a build killed midway (out of
    memory, a crash) otherwise keeps its partial segment on disk for good, as large as the
    collection's vectors. Called before the collection is loaded, under the store's lock, so no
    build of this store can be running.
    """
    temp = collection_dir / "temp_segments"
    freed = 0
    if not temp.is_dir():
        return 0
    for entry in list(temp.iterdir()):
        files = [entry] if entry.is_file() else [f for f in entry.rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files if f.exists())
        try:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:  # not fatal: the collection itself is intact
            logger.warning("could not remove %s left by an interrupted optimization: %s", entry, exc)
            continue
        freed += size
    if freed:
        logger.warning(
            "removed %.1f MB left in %s by an interrupted optimization (the collection is intact)", freed / 2**20, temp
        )
    return freed
