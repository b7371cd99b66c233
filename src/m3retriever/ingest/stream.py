"""A lazily read stream of documents that knows how many to expect (for a progress bar)."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from m3retriever.types import Document

__all__ = ["DocumentStream"]


class DocumentStream(Iterator[Document]):
    """Documents read lazily from a folder or a file, with ``len()`` the number expected (files
    or lines, counted before any is read), so that a progress bar has a total.

    The count drops as files are skipped; blank lines of a JSONL file are counted in it.
    """

    def __init__(self, count: Callable[[], int | None]) -> None:
        self._count = count
        self._expected: int | None = None
        self._docs: Iterator[Document] = iter(())

    def _read(self, docs: Iterable[Document]) -> DocumentStream:
        self._docs = iter(docs)
        return self

    def __next__(self) -> Document:
        return next(self._docs)

    def __iter__(self) -> DocumentStream:
        return self

    def __len__(self) -> int:
        if self._expected is None:
            self._expected = self._count() or 0
        return self._expected

    def _one_less(self) -> None:
        self._expected = max(0, len(self) - 1)

    def map_batches(self, fn: Callable[[list[Document]], list[Document]], size: int = 256) -> DocumentStream:
        """The same stream (its ``len()`` included) with its documents passed through ``fn``
        ``size`` at a time, as iterated; ``fn`` returns one document for each it is given."""
        docs = self._docs

        def mapped() -> Iterator[Document]:
            batch: list[Document] = []
            for doc in docs:
                batch.append(doc)
                if len(batch) >= size:
                    yield from fn(batch)
                    batch = []
            if batch:
                yield from fn(batch)

        self._docs = mapped()
        return self
