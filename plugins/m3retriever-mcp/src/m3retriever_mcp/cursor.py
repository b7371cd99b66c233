"""Opaque, tamper-checked cursors for paging through search results.

A cursor holds where the next page starts, the depth of the ranking the pages are cut from and
a digest of the search it belongs to (collection, query, filter, options), signed with a key
made when the server starts (HMAC-SHA256). Nothing is kept on the server. A cursor that was
altered, made by another server run, or given with other search arguments is refused with a
message saying what to do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from typing import Any

from m3retriever import InputError

__all__ = ["MAX_CURSOR_CHARS", "Page", "Cursors", "search_digest"]

MAX_CURSOR_CHARS = 256
"""Longest cursor accepted (the ones made here have about 100 characters)."""

_TAG_BYTES = 16
_VERSION = 1


@dataclass(frozen=True)
class Page:
    """Where a page starts in a ranking of ``depth`` hits."""

    offset: int
    depth: int


def search_digest(**arguments: Any) -> str:
    """A digest of a search's arguments (JSON values), the same for the same arguments."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_INVALID = (
    "cursor is not valid: it was altered, or made by another run of this server (cursors last "
    "until the server restarts); run the search without cursor to start from the first page"
)


class Cursors:
    """Makes and checks the cursors of one server.

    Args:
        key: The signing key (default: 32 random bytes, so cursors end with the process).
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else os.urandom(32)

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_TAG_BYTES]

    def make(self, digest: str, page: Page) -> str:
        """The cursor of the page ``page`` of the search with arguments digest ``digest``."""
        body = json.dumps({"v": _VERSION, "h": digest, "o": page.offset, "d": page.depth}, separators=(",", ":"))
        raw = body.encode()
        return f"{_b64(raw)}.{_b64(self._tag(raw))}"

    def read(self, cursor: str, digest: str) -> Page:
        """The page ``cursor`` points at, checked against the search's arguments.

        Raises:
            InputError: the cursor was not made here, was altered, or belongs to a search with
                other arguments.
        """
        body_text, _, tag_text = cursor.partition(".")
        try:
            raw, tag = _unb64(body_text), _unb64(tag_text)
        except (binascii.Error, ValueError):
            raise InputError(_INVALID) from None
        if not tag_text or not hmac.compare_digest(tag, self._tag(raw)):
            raise InputError(_INVALID)
        fields = json.loads(raw)  # ours: signed above
        if fields.get("v") != _VERSION:
            raise InputError(_INVALID)
        if not hmac.compare_digest(str(fields["h"]), digest):
            raise InputError(
                "cursor belongs to a search with other arguments: repeat the query, filter, min_score, "
                "max_per_doc, mmr and collection of the search that returned it (top_k may change), or "
                "leave cursor out to start a new search"
            )
        return Page(offset=int(fields["o"]), depth=int(fields["d"]))
