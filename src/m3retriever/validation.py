"""One validation layer at the boundary: what the Python API, the CLI, the adapters and the MCP
server accept is checked here, once, with the same rules everywhere.

The rules guarantee that whatever is accepted can be stored, filtered on and read back on both
backends (Qdrant Edge and qdrant-client):

* **strings** (text, ids, sources, metadata keys and values, queries, filter values) must be
  valid Unicode: lone surrogates (what Python makes of undecodable bytes) are refused;
* **metadata keys** (at every depth) and **filter fields** (dot-separated keys) are made of
  letters, digits, ``_`` and ``-``; these are exactly the keys Qdrant's payload paths can
  address, so a key that can be stored can be filtered on;
* **metadata values** are JSON: ``str``, ``bool``, ``int`` within 64 bits, finite ``float``,
  ``None``, lists and objects, nested at most :data:`MAX_METADATA_DEPTH` levels and at most
  :data:`MAX_METADATA_BYTES` bytes as JSON;
* **filter values** are ``str``, 64-bit ``int`` or ``bool`` for equality; range bounds are finite
  numbers;
* **queries** are non-empty strings of at most :data:`MAX_QUERY_CHARS` characters; the searcher
  then cuts them to the tokens the models read (``Config.max_query_tokens``);
* **documents** have a non-empty text of at most ``Config.max_document_chars`` characters.

Every check raises :class:`~m3retriever.errors.InputError` naming the value and the fix.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any, Mapping

from m3retriever.errors import InputError

__all__ = [
    "INT64_MIN",
    "INT64_MAX",
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_BYTES",
    "MAX_ID_CHARS",
    "MAX_SOURCE_CHARS",
    "MAX_QUERY_CHARS",
    "RESERVED_FIELDS",
    "is_valid_key",
    "check_string",
    "check_key",
    "check_field",
    "check_int64",
    "check_finite",
    "check_metadata",
    "check_doc_id",
    "check_source",
    "check_text",
    "check_query",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_METADATA_DEPTH = 16
"""Levels of nested objects and lists in a document's metadata, the metadata object itself
included (the engine's own limit, past which a collection cannot be reopened, is ~120)."""
MAX_METADATA_BYTES = 256 * 1024
"""Size of a document's metadata as JSON; it is stored with every chunk."""
MAX_ID_CHARS = 1024
MAX_SOURCE_CHARS = 4096
MAX_QUERY_CHARS = 100_000
"""Longest query accepted at all; longer input is refused before any work is done."""
RESERVED_FIELDS = ("doc_id", "source", "chunk_index")
"""Filter fields that address the chunk itself rather than user metadata."""

_KEY_RULE = "letters, digits, '_' and '-' only (no spaces, dots, punctuation or emoji)"


def is_valid_key(key: object) -> bool:
    """Whether ``key`` can be a metadata key (and so a filter field component)."""
    return isinstance(key, str) and bool(key) and all(c.isalnum() or c in "_-" for c in key)


def check_string(value: object, what: str) -> str:
    """``value`` as a ``str`` that is valid Unicode (no lone surrogates)."""
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{what} {_undecodable(value[exc.start], exc.start)}") from None
    return value


def _undecodable(char: str, position: int) -> str:
    """Why a lone surrogate is refused; an undecodable byte that Python kept (surrogateescape,
    as for command-line arguments) is named as the byte."""
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return (
            f"is not valid UTF-8 text (byte 0x{code - 0xDC00:02x} at position {position}, which "
            "Python keeps as a lone surrogate, is not valid Unicode); pass UTF-8 text (on a "
            "command line, check that the terminal and locale use UTF-8, e.g. LANG=C.UTF-8)"
        )
    return (
        f"is not valid Unicode (lone surrogate {char!r} at position {position}, usually bytes "
        "that were not UTF-8); decode the input as UTF-8 first"
    )


def check_key(key: object, where: str) -> str:
    """A metadata key: a non-empty string of letters, digits, ``_`` and ``-``."""
    if not isinstance(key, str):
        raise InputError(f"{where}: metadata key {key!r} must be a string, got {type(key).__name__}")
    check_string(key, f"{where}: metadata key")
    if not is_valid_key(key):
        raise InputError(
            f"{where}: metadata key {key!r} is not allowed: use {_KEY_RULE}, so that the key "
            "can be filtered on (rename it, e.g. 'file name' -> 'file_name')"
        )
    return key


def check_field(field: object) -> str:
    """A filter field: a reserved field or dot-separated metadata keys (``"a.b"`` for nesting)."""
    if not isinstance(field, str) or not field:
        raise InputError(f"filter field must be a non-empty metadata key, got {field!r}")
    check_string(field, "filter field")
    if field in RESERVED_FIELDS:
        return field
    if not all(is_valid_key(part) for part in field.split(".")):
        raise InputError(
            f"filter field {field!r} is not a valid metadata key: use {_KEY_RULE}, with '.' "
            "only between the keys of nested objects (e.g. 'author.name')"
        )
    return field


def check_int64(value: int, what: str) -> int:
    """An integer that fits the engine's signed 64 bits."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise InputError(
            f"{what}: integer {value} does not fit in 64 bits (the store's integer type); "
            "store it as a string, or as a float if approximate values are fine"
        )
    return int(value)


def check_finite(value: object, what: str) -> float:
    """A real number (not a bool) that is finite as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{what} must be a number, got {value!r}")
    try:
        out = float(value)
    except OverflowError:
        raise InputError(f"{what} is too large for a float ({value!r:.40}); use a smaller bound") from None
    if not math.isfinite(out):
        raise InputError(f"{what} must be a finite number, got {value!r}")
    return out


def _check_depth(depth: int, where: str) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise InputError(
            f"{where}: metadata is nested more than {MAX_METADATA_DEPTH} levels deep (objects "
            "and lists, the metadata object itself included); flatten it"
        )


def _json_value(value: Any, where: str, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return check_string(value, f"{where}: metadata value")
    if isinstance(value, numbers.Integral):
        return check_int64(int(value), f"{where}: metadata value")
    if isinstance(value, numbers.Real):
        if not math.isfinite(float(value)):
            raise InputError(f"{where}: metadata value {value!r} is not finite; JSON has no NaN or infinity")
        return float(value)
    if isinstance(value, (list, tuple)):
        _check_depth(depth, where)
        return [_json_value(v, where, depth + 1) for v in value]
    if isinstance(value, Mapping):
        _check_depth(depth, where)
        return {check_key(k, where): _json_value(v, where, depth + 1) for k, v in value.items()}
    raise InputError(
        f"{where}: metadata value of type {type(value).__name__} is not JSON; use strings, "
        "numbers, booleans, null, lists and objects (convert dates to ISO strings)"
    )


def check_metadata(metadata: object, where: str) -> dict[str, Any]:
    """A document's metadata as plain JSON data (a new dict); see the module rules."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InputError(f"{where}: metadata must be a mapping (a JSON object), got {type(metadata).__name__}")
    out: dict[str, Any] = _json_value(metadata, where, 1)
    size = len(json.dumps(out, ensure_ascii=False).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise InputError(
            f"{where}: metadata is {size} bytes as JSON, more than {MAX_METADATA_BYTES}; it is "
            "stored with every chunk, so keep large content in the text or elsewhere"
        )
    return out


def check_doc_id(doc_id: object, where: str) -> str:
    """A document id: a non-blank, valid-Unicode string of at most :data:`MAX_ID_CHARS`."""
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise InputError(f"{where}: doc_id must be a non-empty string, got {doc_id!r:.80}")
    check_string(doc_id, f"{where}: doc_id")
    if len(doc_id) > MAX_ID_CHARS:
        raise InputError(f"{where}: doc_id is {len(doc_id)} characters, more than {MAX_ID_CHARS}; use a shorter id")
    return doc_id


def check_source(source: object, where: str) -> str | None:
    """A document's source: ``None`` or a valid-Unicode string of bounded length."""
    if source is None:
        return None
    check_string(source, f"{where}: source")
    if len(source) > MAX_SOURCE_CHARS:  # type: ignore[arg-type]
        raise InputError(f"{where}: source is longer than {MAX_SOURCE_CHARS} characters")
    return source  # type: ignore[return-value]


def check_text(text: object, where: str, max_chars: int | None) -> str:
    """A document's text: a non-blank, valid-Unicode string of at most ``max_chars``."""
    if not isinstance(text, str):
        raise InputError(f"{where}: text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError(f"{where}: text is empty; remove the document or give it content")
    check_string(text, f"{where}: text")
    if max_chars is not None and len(text) > max_chars:
        raise InputError(
            f"{where}: text is {len(text):,} characters, more than max_document_chars="
            f"{max_chars:,}; split the document, or raise max_document_chars (M3R_MAX_DOCUMENT_CHARS)"
        )
    return text


def check_query(query: object) -> str:
    """A query: a non-blank, valid-Unicode string of at most :data:`MAX_QUERY_CHARS`."""
    if not isinstance(query, str):
        raise InputError(f"query must be a non-empty string, got {query!r:.80}")
    if not query.strip():
        raise InputError("query is empty; pass the text to search for as a non-empty string")
    check_string(query, "query")
    if len(query) > MAX_QUERY_CHARS:
        raise InputError(
            f"query is {len(query):,} characters, more than {MAX_QUERY_CHARS:,}; the models read "
            "at most a few hundred tokens of it, so pass the part that matters"
        )
    return query
