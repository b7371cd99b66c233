"""``--include``/``--exclude`` patterns of a folder ingest, matched against a file's path
relative to the folder (``/`` between its parts).

``*`` matches within one path part, ``**`` across parts (``docs/**/*.md``; ``**/`` also
matches no folder at all), ``?`` one character, ``[abc]`` one of a set. A pattern without a
``/`` is matched against the file's name, at any depth (``*.png``), as in a ``.gitignore``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from m3retriever.errors import InputError

__all__ = ["glob_regex", "matches", "FileFilter"]


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """The compiled regular expression of a glob ``pattern`` (see the module docstring).

    Raises:
        InputError: an empty pattern or an unclosed ``[``.
    """
    if not pattern or not pattern.strip("/"):
        raise InputError(f"an empty --include/--exclude pattern {pattern!r}; give a glob such as '*.md' or 'docs/**'")
    body = pattern.strip("/") if "/" in pattern.strip("/") else "**/" + pattern.strip("/")
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if body.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
        elif body.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = body.find("]", i + 2)
            if end < 0:
                raise InputError(f"the pattern {pattern!r} opens a '[' set it does not close; write '[[]' for a '['")
            inner = body[i + 1 : end]
            negate = inner.startswith("!")
            inner = inner[1:] if negate else inner
            out.append("[" + ("^" if negate else "") + inner.replace("\\", "\\\\").replace("^", "\\^") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def matches(relative: str, pattern: str) -> bool:
    """Whether the relative path ``relative`` matches the glob ``pattern``."""
    return glob_regex(pattern).match(relative) is not None


@dataclass(frozen=True)
class FileFilter:
    """Which files of a folder an ingest takes: those matching one of ``include`` (all when
    empty) and none of ``exclude``."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def of(cls, include: Sequence[str] | None = None, exclude: Sequence[str] | None = None) -> FileFilter:
        """Check the patterns (raising :class:`InputError` for a bad one) and keep them."""
        for name, patterns in (("include", include), ("exclude", exclude)):
            if isinstance(patterns, str):
                raise InputError(
                    f"{name} takes a list of glob patterns, got the string {patterns!r}; wrap it in a list"
                )
        made = cls(tuple(include or ()), tuple(exclude or ()))
        for pattern in made.include + made.exclude:
            glob_regex(pattern)
        return made

    def refusal(self, relative: str) -> str | None:
        """Why the file at ``relative`` is left out (``None``: it is taken)."""
        if self.include and not any(matches(relative, p) for p in self.include):
            return "matches no --include pattern"
        for pattern in self.exclude:
            if matches(relative, pattern):
                return f"excluded by {pattern!r}"
        return None
