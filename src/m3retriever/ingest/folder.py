"""Read a folder into documents with the file readers (:mod:`m3retriever.readers`), every file
accounted for: read, or skipped with why (no reader for its suffix, left out by
``--include``/``--exclude``, unreadable, too long, empty), counted per suffix."""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from m3retriever.errors import InputError, MissingDependencyError
from m3retriever.ingest.document_fields import FOLDERS, folders_of
from m3retriever.ingest.globs import FileFilter
from m3retriever.ingest.run import FileCount
from m3retriever.ingest.stream import DocumentStream
from m3retriever.ingest.text_files import ReadError, TooLongError
from m3retriever.readers.base import ReadDocument, Reader, UnreadableFile
from m3retriever.types import Document

__all__ = ["FolderTally", "read_folder", "TEXT_SUFFIXES"]

# The logger folders were read under before this module existed (logging set up for it still applies).
logger = logging.getLogger("m3retriever.ingest.sources")

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
"""Files read as UTF-8 text, whose size bounds their length before they are read."""


@dataclass
class FolderTally:
    """What a folder read met, filled in as its documents are iterated.

    Attributes:
        skipped: ``"path: reason"`` of each skipped file.
        notes: ``"path: problem"`` of what a reader could not read in a file it read.
        selected: The relative paths of the files the include/exclude patterns take.
        produced: Per file read (its relative path), the doc ids of its documents.
    """

    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    selected: set[str] = field(default_factory=set)
    produced: dict[str, list[str]] = field(default_factory=dict)
    _read: collections.Counter[str] = field(default_factory=collections.Counter)
    _reasons: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )

    def read(self, suffix: str, relative: str, doc_ids: list[str]) -> None:
        self._read[suffix] += 1
        self.produced[relative] = doc_ids

    def skip(self, path: Path, suffix: str, kind: str, reason: str) -> None:
        """Count a skipped file under ``kind`` (the short reason shown per suffix)."""
        self._reasons[suffix][kind] += 1
        self.skipped.append(f"{path}: {reason}")

    def files(self) -> tuple[FileCount, ...]:
        """The counts per suffix, in suffix order."""
        suffixes = sorted(set(self._read) | set(self._reasons))
        return tuple(
            FileCount(
                s,
                self._read[s],
                sum(self._reasons[s].values()),
                tuple(sorted(self._reasons[s].items(), key=lambda kv: (-kv[1], kv[0]))),
            )
            for s in suffixes
        )


def read_folder(
    folder: str | Path,
    *,
    strict: bool = False,
    skipped: list[str] | None = None,
    max_chars: int | None = None,
    files: FileFilter | None = None,
    tally: FolderTally | None = None,
    readers: Mapping[str, Callable[[], Reader]] | None = None,
) -> DocumentStream:
    """The documents of the files under ``folder`` (recursively, sorted), read as iterated,
    each file with the reader registered for its suffix (:mod:`m3retriever.readers`).

    The doc id and the ``source`` are the path relative to ``folder``, with ``/`` between its
    parts (``tutorial/query-params.md``, however ``folder`` was written); a file a reader reads
    into several documents gives ``path#1``, ``path#2``... Metadata holds the file name, the
    suffix, the folders the file lies in, its title when its reader found one and what the
    reader adds (a PDF's ``pages``...): see :mod:`m3retriever.ingest.document_fields`.
    A file is skipped, with a warning, when no reader reads its suffix, the patterns leave it
    out, it cannot be read (corrupt, not UTF-8, permission denied, its reader's library
    missing), it is longer than ``max_chars`` or it holds no text; with ``strict``, a file that
    cannot be read or is too long is an error instead.

    Args:
        folder: The folder to read.
        strict: Check every file before the first document is handed out, and raise on the
            first that cannot be read or is too long, instead of skipping it.
        skipped: A list that receives ``"path: reason"`` for every skipped file.
        max_chars: Longest text accepted, in characters (``None``: no limit).
        files: Include/exclude patterns (default: every file).
        tally: Receives the counts per suffix, the notes and what was read.
        readers: Reader factories by suffix (default: the loaded plugins').

    Raises:
        InputError: if the folder doesn't exist or holds no file a reader reads, or (with
            ``strict``, on the first iteration) naming the first file that cannot be read or
            is too long.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{folder} is not a directory; pass a folder of documents")
    if readers is None:
        from m3retriever.plugins import reader_factories

        readers = dict(reader_factories())
    tally = tally if tally is not None else FolderTally()
    todo = _files_to_read(root, files or FileFilter(), readers, tally)
    if not todo:
        raise InputError(
            f"{folder} holds no file that a reader reads ({len(tally.skipped)} other files); readers exist for "
            f"{', '.join(sorted(readers))} (see 'm3retriever plugins')"
        )
    stream = DocumentStream(lambda: len(todo))
    reading = _Reading(root, readers, max_chars, tally, stream)
    docs = reading.documents(todo, strict)
    if skipped is not None:
        docs = _copy_skipped(docs, tally, skipped)
    return stream._read(docs)


def _files_to_read(
    root: Path, pick: FileFilter, readers: Mapping[str, object], tally: FolderTally
) -> list[tuple[Path, str, str]]:
    """``(path, relative path, suffix)`` of the files under ``root`` to read, sorted; the others
    are counted as skipped in ``tally`` (left out by ``pick``, or no reader for their suffix)."""
    todo: list[tuple[Path, str, str]] = []
    for path in sorted(p for p in root.rglob("*") if not p.is_dir()):
        relative = path.relative_to(root).as_posix()
        suffix = path.suffix.lower()
        refusal = pick.refusal(relative)
        if refusal is not None:
            tally.skip(path, suffix, refusal, refusal)
            continue
        if not path.is_file():  # a broken symbolic link, a socket, a pipe
            kind = "broken link" if path.is_symlink() else "not a file"
            tally.skip(path, suffix, kind, "a symbolic link to nothing" if path.is_symlink() else "not a regular file")
            continue
        tally.selected.add(relative)
        if suffix not in readers:
            kind = f"no reader for {suffix or 'files without a suffix'}"
            tally.skip(path, suffix, kind, kind)
            continue
        todo.append((path, relative, suffix))
    return todo


def _copy_skipped(docs: Iterator[Document], tally: FolderTally, skipped: list[str]) -> Iterator[Document]:
    """``docs``, with ``skipped`` kept equal to the tally's list as they are iterated."""
    skipped[:] = tally.skipped
    for doc in docs:
        skipped[:] = tally.skipped
        yield doc
    skipped[:] = tally.skipped


class _Reading:
    """Reads a folder's files one by one into documents, counting each into the tally."""

    def __init__(
        self,
        root: Path,
        readers: Mapping[str, Callable[[], Reader]],
        max_chars: int | None,
        tally: FolderTally,
        stream: DocumentStream,
    ) -> None:
        self.root, self.factories, self.max_chars, self.tally, self.stream = root, readers, max_chars, tally, stream
        self._built: dict[str, Reader | Exception] = {}

    def documents(self, todo: list[tuple[Path, str, str]], strict: bool) -> Iterator[Document]:
        if strict:
            for path, _, suffix in todo:  # every file is checked before anything is written
                self._read_strict(path, suffix, " Nothing of the folder was written.")
        for path, relative, suffix in todo:
            try:
                read = self._read(path, suffix)
            except ReadError as exc:
                if strict:  # the file changed since it was checked
                    raise _strict_error(exc, "") from None
                self._skip(path, suffix, _kind(exc), exc.what)
                continue
            docs = [d for d in read if d.text.strip()]
            if not docs:
                self._skip(
                    path,
                    suffix,
                    "empty",
                    "empty file" if suffix in TEXT_SUFFIXES or _size(path) == 0 else "no text in it",
                )
                continue
            ids = [relative] if len(docs) == 1 else [f"{relative}#{i}" for i in range(1, len(docs) + 1)]
            self.tally.read(suffix, relative, ids)
            for doc in docs:
                self.tally.notes.extend(f"{path}: {problem}" for problem in doc.problems)
            for doc_id, doc in zip(ids, docs):
                meta = {"file_name": path.name, "suffix": suffix, **dict(doc.metadata), FOLDERS: folders_of(relative)}
                if doc.title and "title" not in meta:
                    meta["title"] = doc.title
                yield Document(doc.text, doc_id, meta, relative, doc.structure)

    def _reader(self, suffix: str) -> Reader:
        if suffix not in self._built:
            try:
                self._built[suffix] = self.factories[suffix]()
            except Exception as exc:  # a reader's library missing or broken: its files are skipped
                self._built[suffix] = exc
        built = self._built[suffix]
        if isinstance(built, Exception):
            raise built
        return built

    def _read(self, path: Path, suffix: str) -> Sequence[ReadDocument]:
        """The file's documents, or :class:`ReadError` saying why it cannot be read."""
        where = str(path)
        try:
            if self.max_chars is not None and suffix in TEXT_SUFFIXES:
                size = path.stat().st_size
                if size > 4 * self.max_chars + 3:
                    raise TooLongError(path, f"{size:,} bytes", self.max_chars)
            docs = list(self._reader(suffix)(path))
        except ReadError:
            raise
        except UnreadableFile as exc:
            raise _Unreadable(where, str(exc), "unreadable") from None
        except MissingDependencyError as exc:
            raise _Unreadable(where, str(exc), "missing library") from None
        except Exception as exc:  # a corrupt file: the reader's own error says why
            raise _Unreadable(where, _describe(exc), "unreadable") from None
        n = sum(len(d.text) for d in docs)
        if self.max_chars is not None and n > self.max_chars:
            raise TooLongError(path, f"{n:,} characters", self.max_chars)
        return docs

    def _read_strict(self, path: Path, suffix: str, written: str) -> None:
        try:
            self._read(path, suffix)
        except ReadError as exc:
            raise _strict_error(exc, written) from None

    def _skip(self, path: Path, suffix: str, kind: str, reason: str) -> None:
        logger.warning("skipping %s: %s", path, reason)
        self.stream._one_less()
        self.tally.skip(path, suffix, kind, reason)


class _Unreadable(ReadError):
    def __init__(self, where: str, what: str, kind: str) -> None:
        super().__init__(where, what, "")
        self.kind = kind


def _kind(exc: ReadError) -> str:
    if isinstance(exc, TooLongError):
        return "too long"
    return exc.kind if isinstance(exc, _Unreadable) else "unreadable"


def _describe(exc: BaseException) -> str:
    message = " ".join(str(exc).split())[:300]
    return f"cannot be read ({type(exc).__name__}: {message})" if message else f"cannot be read ({type(exc).__name__})"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _strict_error(exc: ReadError, written: str) -> InputError:
    return InputError(
        f"{exc}; or remove it from the folder.{written} Without strict/--strict, unreadable "
        "and too long files are skipped and listed."
    )
