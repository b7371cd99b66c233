"""Reading UTF-8 text files (``*.gz`` gunzipped) with errors that name the file, the line, the
problem and the fix: the line reader behind JSONL files and the whole-file read behind folders."""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path
from types import TracebackType
from typing import IO, Callable, Iterator, TypeVar

from m3retriever.errors import InputError

__all__ = ["TextReader", "open_text", "read_text_file", "count_lines", "ReadError", "TooLongError"]

_T = TypeVar("_T")
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


READ_ERRORS = (UnicodeDecodeError, OSError, EOFError, zlib.error)


class ReadError(InputError):
    """A file could not be read; ``what`` says why (without the fix)."""

    def __init__(self, where: str, what: str, fix: str) -> None:
        super().__init__(f"{where}: {what}; {fix}" if fix else f"{where}: {what}")
        self.what = what


def read_error(where: str, exc: BaseException) -> ReadError:
    what, fix = _problem(exc)
    return ReadError(where, what, fix)


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
        except READ_ERRORS as exc:
            if isinstance(exc, UnicodeDecodeError):
                where = f"{self.path}:{self.lineno + 1}"
            elif self.lineno:
                where = f"{self.path} (after line {self.lineno})"
            else:
                where = str(self.path)
            raise read_error(where, exc) from None

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


def read_text_file(path: Path, max_chars: int | None = None) -> str:
    """The whole content of a UTF-8 text file (BOM dropped, universal newlines).

    Args:
        path: The file.
        max_chars: Longest text accepted (``None``: no limit). A file of at most that many
            bytes is within it, and one of more than four bytes a character over it, without
            decoding.

    Raises:
        ReadError: naming the file, line and problem.
        TooLongError: when the text is longer than ``max_chars``.
    """
    try:
        size = path.stat().st_size
        if max_chars is not None and size > 4 * max_chars + 3:
            raise TooLongError(path, f"{size:,} bytes", max_chars)
        data = path.read_bytes()
    except OSError as exc:
        raise read_error(str(path), exc) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        what, fix = _problem(exc)
        raise ReadError(str(path), f"{what} on line {line}", fix) from None
    if max_chars is not None and len(text) > max_chars:
        raise TooLongError(path, f"{len(text):,} characters", max_chars)
    return text.replace("\r\n", "\n").replace("\r", "\n")


class TooLongError(ReadError):
    """A file holds more than ``max_document_chars`` characters; ``what`` says how much, what
    the limit is and how to raise it."""

    def __init__(self, path: Path, size: str, max_chars: int) -> None:
        super().__init__(
            str(path),
            f"too long: {size}, more than max_document_chars={max_chars:,} characters (split the "
            "file, or raise the limit: --max-document-chars on the command line, "
            "M3R_MAX_DOCUMENT_CHARS or max_document_chars in the configuration)",
            "",
        )


def count_lines(path: Path) -> int | None:
    """How many lines a text file (``*.gz`` gunzipped) holds, counted in 1 MiB blocks without
    decoding (``None`` when it cannot be read: reading it for real says why)."""
    try:
        with TextReader._open_binary(path) as fh:
            n = 0
            last = b"\n"
            for block in iter(lambda: fh.read(1 << 20), b""):
                n += block.count(b"\n")
                last = block[-1:]
            return n + (last != b"\n")
    except READ_ERRORS:
        return None
