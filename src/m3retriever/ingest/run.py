"""The bookkeeping of one ingest call: its report and progress bar, the pace of its
writes (each write holds a few seconds of encoding) and Ctrl-C handling (a write in progress
finishes, and the interrupt says how many documents were saved)."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

__all__ = ["FileCount", "IngestReport", "IngestInterrupted", "IngestRun", "WritePacer", "batched", "sigint_deferred", "write_groups"]

T = TypeVar("T")


@dataclass(frozen=True)
class FileCount:
    """The files of one suffix that a folder ingest met.

    Attributes:
        suffix: The suffix, lower case with its dot (``""`` for files without one).
        read: Files read into documents.
        skipped: Files not read.
        reasons: ``(reason, files)`` for the skipped ones (``("no reader for .png", 3)``,
            ``("excluded by '*.log'", 2)``, ``("unreadable", 1)``...), most files first.
    """

    suffix: str
    read: int = 0
    skipped: int = 0
    reasons: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class IngestReport:
    """What an ingest call did.

    Attributes:
        documents: Documents done: written, or found unchanged (all of them, once the call
            returns; those saved before the interrupt, in :class:`IngestInterrupted`'s).
        added: New documents written.
        updated: Changed documents rewritten (their stale chunks removed).
        skipped: Unchanged documents (content hash matched): no encoding, no writes.
        chunks_written: Chunks encoded and upserted.
        chunks_deleted: Stale chunks removed.
        seconds: Wall time.
        skipped_files: ``"path: reason"`` for each file a folder ingest skipped (no reader
            for its suffix, excluded, unreadable, longer than ``max_document_chars``, or empty).
        files: A folder ingest's files per suffix: read, skipped and why (every file of the
            folder is in one of them).
        notes: ``"path: problem"`` for what a reader could not read in a file it read (a PDF
            page without a text layer).
        removed: Documents deleted by a sync (``sync=True``, ``--sync``) because their file
            left the folder (their chunks are counted in ``chunks_deleted``).
    """

    documents: int = 0
    added: int = 0
    updated: int = 0
    skipped: int = 0
    chunks_written: int = 0
    chunks_deleted: int = 0
    seconds: float = 0.0
    skipped_files: tuple[str, ...] = ()
    files: tuple[FileCount, ...] = ()
    notes: tuple[str, ...] = ()
    removed: int = 0

    def __add__(self, other: "IngestReport") -> "IngestReport":
        return IngestReport(
            *(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__)
        )


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C (``KeyboardInterrupt``) during an ingest; ``report`` counts what was saved.

    Every document counted in ``report.documents`` is in the store whole (written, or found
    unchanged); re-running the same ingest skips them and goes on with the rest.
    """

    def __init__(self, report: IngestReport) -> None:
        super().__init__(
            f"ingest interrupted: {report.documents} documents saved; run the same ingest again "
            "to resume (saved documents are skipped)"
        )
        self.report = report


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold back Ctrl-C while the block runs, and raise it (``KeyboardInterrupt``) once the
    block is done, so that a write and its bookkeeping are never cut in half.

    Only in the main thread and while Python's own SIGINT handler is installed (elsewhere the
    block runs as it is).
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


class WritePacer:
    """How many chunks the next write holds: about ``seconds`` of encoding at the rate the
    last encoding ran (``first_chunks`` until one was measured)."""

    def __init__(self, seconds: float, first_chunks: int) -> None:
        self.seconds = seconds
        self.first_chunks = first_chunks
        self.rate: float | None = None  # chunks per second of the last encoding

    def target(self) -> int:
        if self.rate is None:
            return self.first_chunks
        return max(1, int(self.rate * self.seconds))

    def record(self, chunks: int, seconds: float) -> None:
        if chunks and seconds > 0:
            self.rate = chunks / seconds


def write_groups(items: Sequence[T], size: Callable[[T], int], target: Callable[[], int]) -> Iterator[list[T]]:
    """``items`` in consecutive groups of about ``target()`` in total ``size`` (never empty, and
    never an item split; ``target`` is asked again for each group)."""
    group: list[T] = []
    total = 0
    for item in items:
        n = size(item)
        if group and total + n > target():
            yield group
            group, total = [], 0
        group.append(item)
        total += n
    if group:
        yield group


class IngestRun:
    """The running report of one ingest call and its progress bar (documents, with the chunks
    written in its postfix), advanced after each write; while the bar shows, log records are
    written above it instead of through it. ``expected`` gives the number of documents
    expected as it changes (a folder's skipped files drop out of it)."""

    def __init__(
        self,
        report: IngestReport,
        *,
        total: int | None,
        show: bool,
        expected: Callable[[], int | None] | None = None,
        on_progress: Callable[[IngestReport], None] | None = None,
    ) -> None:
        # Imported here: a search imports this module (through the retriever) but draws no bar.
        from tqdm.auto import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self.report = report
        self._expected = expected
        self._on_progress = on_progress
        self._stack = contextlib.ExitStack()
        if show:
            self._stack.enter_context(logging_redirect_tqdm([logging.getLogger()]))
        self.bar: Any = tqdm(total=total or None, unit="doc", desc="ingest", disable=not show, dynamic_ncols=True)
        self._stack.callback(self.bar.close)

    def add(self, part: IngestReport) -> None:
        """Count a write (or a batch of unchanged documents) into the report and the bar."""
        self.report = self.report + part
        total = self._expected() if self._expected is not None else None
        if total and total != self.bar.total:
            self.bar.total = max(total, self.bar.n + part.documents)
        self.bar.set_postfix(chunks=self.report.chunks_written, refresh=False)
        self.bar.update(part.documents)
        if self._on_progress is not None:
            self._on_progress(self.report)

    def close(self, finished: bool) -> None:
        """Close the bar (at its count when ``finished``: the total was an estimate)."""
        if finished and self.bar.total is not None and self.bar.n != self.bar.total:
            self.bar.total = self.bar.n
            self.bar.refresh()
        self._stack.close()
