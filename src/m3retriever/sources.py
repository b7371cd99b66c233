"""Read documents from folders of .txt/.md files, JSONL files and BEIR corpora."""

from __future__ import annotations

import gzip
import json
import logging
import re
import zlib
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Callable, Iterator, Mapping, TypeVar

from m3retriever.errors import InputError
from m3retriever.types import Document
from m3retriever.validation import MAX_METADATA_DEPTH, check_doc_id, check_metadata, check_source, check_text

__all__ = [
    "read_folder",
    "read_jsonl",
    "read_beir_corpus",
    "open_text",
    "iter_jsonl_objects",
    "coerce_document",
]

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".markdown")


_T = TypeVar("_T")

_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}

_LINE_RE = re.compile(r"[^\n]*\n|[^\n]+")


def _problem(exc: BaseException) -> tuple[str, str]:
    """``(what went wrong, how to fix it)`` for an error raised while reading a file."""
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x})",
            "convert it to UTF-8, e.g. with 'iconv -f latin1 -t utf-8'",
        )
    if isinstance(exc, gzip.BadGzipFile):
        return (
            f"not a valid gzip file ({exc})",
            "re-create it with gzip, or drop the .gz suffix if it is plain text",
        )
    if isinstance(exc, EOFError):
        return ("the gzip data is truncated", "re-create or re-download the file")
    if isinstance(exc, zlib.error):
        return (f"the gzip data is corrupt ({exc})", "re-create or re-download the file")
    if isinstance(exc, PermissionError):
        return ("permission denied", "make it readable (chmod +r) or run as a user who can read it")
    if isinstance(exc, IsADirectoryError):
        return ("is a directory, not a file", "pass a file")
    if isinstance(exc, OSError):
        return (f"cannot be read ({exc.strerror or exc})", "check the file and the disk it is on")
    raise TypeError(f"not a read error: {exc!r}")  # pragma: no cover - programming error


_READ_ERRORS = (UnicodeDecodeError, OSError, EOFError, zlib.error)


class _ReadError(InputError):
    """A file could not be read; ``what`` says why (without the fix)."""

    def __init__(self, where: str, what: str, fix: str) -> None:
        super().__init__(f"{where}: {what}; {fix}")
        self.what = what


def _read_error(where: str, exc: BaseException) -> _ReadError:
    what, fix = _problem(exc)
    return _ReadError(where, what, fix)


class TextReader:
    """A read-only stream of the lines of a UTF-8 text file (gunzipped if ``*.gz``).

    Universal newlines as in text mode; a UTF-8 byte-order mark is dropped. Decoding, gzip and
    I/O errors become :class:`InputError` naming the file and line. Use it like a text file:
    ``with open_text(path) as fh: for line in fh: ...``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lineno = 0  # lines handed out so far
        self._pending: list[str] = []
        self._started = False  # a BOM is dropped from the first line only
        self._raw: IO[bytes] = self._guard(lambda: self._open_binary(path))

    @staticmethod
    def _open_binary(path: Path) -> IO[bytes]:
        if path.suffix == ".gz":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")  # noqa: SIM115 - closed by close()

    def _guard(self, read: Callable[[], _T]) -> _T:
        try:
            return read()
        except _READ_ERRORS as exc:
            if isinstance(exc, UnicodeDecodeError):
                where = f"{self.path}:{self.lineno + 1}"
            elif self.lineno:
                where = f"{self.path} (after line {self.lineno})"
            else:
                where = str(self.path)
            raise _read_error(where, exc) from None

    def _decode(self, raw: bytes) -> str:
        encoding = "utf-8" if self._started else "utf-8-sig"
        self._started = True
        text = self._guard(lambda: raw.decode(encoding))
        return text.replace("\r\n", "\n").replace("\r", "\n")

    def readline(self) -> str:
        """The next line (with its ``\\n``), or ``""`` at the end of the file."""
        while not self._pending:
            raw = self._guard(self._raw.readline)
            if not raw:
                return ""
            self._pending = _LINE_RE.findall(self._decode(raw))
        self.lineno += 1
        return self._pending.pop(0)

    def read(self) -> str:
        """The rest of the file."""
        return "".join(iter(self.readline, ""))

    def __iter__(self) -> Iterator[str]:
        return iter(self.readline, "")

    def close(self) -> None:
        """Close the underlying file."""
        self._raw.close()

    @property
    def closed(self) -> bool:
        return self._raw.closed

    def __enter__(self) -> TextReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_text(path: str | Path) -> TextReader:
    """Open a UTF-8 text file for reading lines, transparently gunzipping ``*.gz``.

    A byte-order mark is dropped.

    Raises:
        InputError: naming the file (and line) when it cannot be opened, read, gunzipped or
            decoded as UTF-8, and the fix.
    """
    return TextReader(Path(path))


def _read_text_file(path: Path) -> str:
    """The whole content of a UTF-8 text file (BOM dropped, universal newlines).

    Raises:
        InputError: naming the file, line and problem.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _read_error(str(path), exc) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        what, fix = _problem(exc)
        raise _ReadError(str(path), f"{what} on line {line}", fix) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def coerce_document(item: Any, *, where: str = "input", max_chars: int | None = None) -> Document:
    """Turn a :class:`Document` or a mapping into a validated :class:`Document`.

    Mappings need ``text`` and ``doc_id`` (or ``id``/``_id``); ``metadata`` and ``source``
    are optional. The rules are :mod:`m3retriever.validation`'s; the returned document's
    metadata is plain JSON data.

    Args:
        item: The document.
        where: Where it came from, for error messages ("document #3", "file.jsonl:12").
        max_chars: Longest text accepted (``None``: no limit).

    Raises:
        InputError: naming the field that is missing or invalid, and the fix.
    """
    if isinstance(item, Document):
        doc = item
    elif isinstance(item, Mapping):
        if "text" not in item:
            keys = sorted(str(k) for k in item)
            raise InputError(f"{where}: a document needs a 'text' field, got keys {keys}")
        doc = Document(
            text=item["text"],
            doc_id=item.get("doc_id", item.get("id", item.get("_id"))),
            metadata=item.get("metadata") or {},
            source=item.get("source"),
        )
    else:
        raise InputError(
            f"{where}: expected a Document or a mapping with 'text' and 'doc_id', "
            f"got {type(item).__name__}"
        )
    doc_id = check_doc_id(doc.doc_id, where)
    where = f"{where} (doc_id {doc_id!r:.80})"
    return Document(
        text=check_text(doc.text, where, max_chars),
        doc_id=doc_id,
        metadata=check_metadata(doc.metadata, where),
        source=check_source(doc.source, where),
    )


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def iter_jsonl_objects(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``("file:line", object)`` for each non-blank line of a JSONL file (``.gz`` too).

    Raises:
        InputError: if the file is missing or cannot be read (not UTF-8, a corrupt or truncated
            gzip, permission denied), or naming the file and line of a line that is not a JSON
            object.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file; pass an existing .jsonl(.gz) file")
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{where}: not valid JSON ({exc.msg}); write one JSON object per line"
                ) from None
            except RecursionError:
                raise InputError(
                    f"{where}: JSON nested too deeply to read; metadata may nest at most "
                    f"{MAX_METADATA_DEPTH} levels, so flatten it"
                ) from None
            if not isinstance(obj, dict):
                raise InputError(
                    f"{where}: each line must be a JSON object such as "
                    f'{{"doc_id": "1", "text": "..."}}, got {_json_type(obj)}'
                )
            yield where, obj


def _skip(path: Path, reason: str, skipped: list[str] | None) -> None:
    logger.warning("skipping %s: %s", path, reason)
    if skipped is not None:
        skipped.append(f"{path}: {reason}")


def read_folder(
    folder: str | Path,
    *,
    suffixes: tuple[str, ...] = TEXT_SUFFIXES,
    strict: bool = False,
    skipped: list[str] | None = None,
) -> Iterator[Document]:
    """Yield one document per text file under ``folder`` (recursively, sorted).

    The doc id is the path relative to ``folder``; metadata holds the file name and suffix.
    Empty files are skipped; so are files that cannot be read (not UTF-8, permission denied)
    unless ``strict``. Each skip is logged as a warning.

    Args:
        folder: The folder to read.
        suffixes: File suffixes to read (lower case).
        strict: Raise on the first unreadable file instead of skipping it.
        skipped: A list that receives ``"path: reason"`` for every skipped file.

    Raises:
        InputError: if the folder doesn't exist or holds no matching file, or (with
            ``strict``) naming the first file that cannot be read.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{folder} is not a directory; pass a folder of {', '.join(suffixes)} files")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"{folder} holds no {', '.join(suffixes)} files")
    for path in files:
        try:
            text = _read_text_file(path)
        except _ReadError as exc:
            if strict:
                raise InputError(
                    f"{exc}, or remove it from the folder (without strict/--strict unreadable "
                    "files are skipped with a warning)"
                ) from None
            _skip(path, exc.what, skipped)
            continue
        if not text.strip():
            _skip(path, "empty file", skipped)
            continue
        yield Document(
            text=text,
            doc_id=path.relative_to(root).as_posix(),
            metadata={"file_name": path.name, "suffix": path.suffix.lower()},
            source=str(path),
        )


def _jsonl_metadata(obj: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The ``metadata`` object of a JSONL record (``{}`` when absent or null)."""
    metadata = obj.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InputError(
            f"{where}: 'metadata' must be a JSON object such as {{\"lang\": \"en\"}}, got "
            f"{_json_type(metadata)}; fix the line or move the values to top-level fields"
        )
    return dict(metadata)


def read_jsonl(path: str | Path, *, text_field: str = "text", id_field: str = "doc_id") -> Iterator[Document]:
    """Yield documents from a JSONL file (one object per line; ``.gz`` accepted).

    Each line needs ``text_field`` and ``id_field`` (``id``/``_id`` are accepted too);
    ``title`` is prepended to the text when present; ``metadata`` (an object) and
    ``source`` are optional; other top-level fields are kept as metadata.

    Raises:
        InputError: naming the file and line of a malformed record, or the file when it cannot
            be read.
    """
    for where, obj in iter_jsonl_objects(path):
        doc_id = obj.get(id_field, obj.get("doc_id", obj.get("id", obj.get("_id"))))
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        text = obj.get(text_field)
        title = obj.get("title")
        if isinstance(title, str) and title.strip() and isinstance(text, str):
            text = f"{title.strip()}\n{text}"
        reserved = {text_field, id_field, "doc_id", "id", "_id", "title", "metadata", "source"}
        metadata = _jsonl_metadata(obj, where)
        metadata.update({k: v for k, v in obj.items() if k not in reserved})
        if isinstance(title, str) and title.strip():
            metadata.setdefault("title", title.strip())
        yield coerce_document(
            {"text": text, "doc_id": doc_id, "metadata": metadata, "source": obj.get("source", str(path))},
            where=where,
        )


def read_beir_corpus(folder: str | Path) -> Iterator[Document]:
    """Yield the documents of a BEIR-layout dataset (``corpus.jsonl`` or ``corpus.jsonl.gz``)."""
    root = Path(folder)
    for name in ("corpus.jsonl.gz", "corpus.jsonl"):
        if (root / name).is_file():
            yield from read_jsonl(root / name, id_field="_id")
            return
    raise InputError(f"{folder} is not a BEIR dataset: no corpus.jsonl(.gz) in it")
