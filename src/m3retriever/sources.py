"""Read documents from folders of .txt/.md files, JSONL files and BEIR corpora."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

from m3retriever.errors import InputError
from m3retriever.types import Document

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


def open_text(path: str | Path) -> IO[str]:
    """Open a text file, transparently gunzipping ``*.gz``."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")  # noqa: SIM115


def coerce_document(item: Any, *, where: str = "input") -> Document:
    """Turn a :class:`Document` or a mapping into a validated :class:`Document`.

    Mappings need ``text`` and ``doc_id`` (or ``id``/``_id``); ``metadata`` and ``source``
    are optional.

    Raises:
        InputError: naming the field that is missing or has the wrong type.
    """
    if isinstance(item, Document):
        doc = item
    elif isinstance(item, Mapping):
        doc_id = item.get("doc_id", item.get("id", item.get("_id")))
        if "text" not in item:
            raise InputError(f"{where}: a document needs a 'text' field, got keys {sorted(item)}")
        metadata = item.get("metadata") or {}
        doc = Document(
            text=item["text"],
            doc_id=doc_id,  # type: ignore[arg-type]
            metadata=metadata,
            source=item.get("source"),
        )
    else:
        raise InputError(
            f"{where}: expected a Document or a mapping with 'text' and 'doc_id', "
            f"got {type(item).__name__}"
        )
    if not isinstance(doc.doc_id, str) or not doc.doc_id.strip():
        raise InputError(f"{where}: doc_id must be a non-empty string, got {doc.doc_id!r}")
    if not isinstance(doc.text, str):
        raise InputError(
            f"{where}: text of document {doc.doc_id!r} must be a string, got {type(doc.text).__name__}"
        )
    if not doc.text.strip():
        raise InputError(
            f"{where}: document {doc.doc_id!r} has empty text; remove it or give it content"
        )
    if not isinstance(doc.metadata, Mapping):
        raise InputError(
            f"{where}: metadata of document {doc.doc_id!r} must be a mapping, "
            f"got {type(doc.metadata).__name__}"
        )
    for key in doc.metadata:
        if not isinstance(key, str) or not key or "." in key:
            raise InputError(
                f"{where}: metadata key {key!r} of document {doc.doc_id!r} must be a non-empty "
                "string without dots"
            )
    try:
        json.dumps(dict(doc.metadata), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{where}: metadata of document {doc.doc_id!r} is not JSON-serialisable ({exc}); "
            "use strings, numbers, booleans, lists and dicts"
        ) from None
    if doc.source is not None and not isinstance(doc.source, str):
        raise InputError(f"{where}: source of document {doc.doc_id!r} must be a string")
    return doc


def iter_jsonl_objects(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``("file:line", object)`` for each non-blank line of a JSONL file (``.gz`` too).

    Raises:
        InputError: if the file is missing, or naming the file and line of a line that is not a
            JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{where}: each line must be a JSON object")
            yield where, obj


def read_folder(folder: str | Path, *, suffixes: tuple[str, ...] = TEXT_SUFFIXES) -> Iterator[Document]:
    """Yield one document per text file under ``folder`` (recursively, sorted).

    The doc id is the path relative to ``folder``; metadata holds the file name and suffix.

    Raises:
        InputError: if the folder doesn't exist, holds no matching file, or a file is not
            UTF-8 text.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{folder} is not a directory; pass a folder of {', '.join(suffixes)} files")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"{folder} holds no {', '.join(suffixes)} files")
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{path} is not UTF-8 text; convert it or remove it from the folder") from None
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
        if not text.strip():
            logger.warning("skipping empty file %s", path)
            continue
        rel = path.relative_to(root).as_posix()
        yield Document(
            text=text,
            doc_id=rel,
            metadata={"file_name": path.name, "suffix": path.suffix.lower()},
            source=str(path),
        )


def read_jsonl(path: str | Path, *, text_field: str = "text", id_field: str = "doc_id") -> Iterator[Document]:
    """Yield documents from a JSONL file (one object per line; ``.gz`` accepted).

    Each line needs ``text_field`` and ``id_field`` (``id``/``_id`` are accepted too);
    ``title`` is prepended to the text when present; ``metadata`` (an object) and
    ``source`` are optional; other top-level fields are kept as metadata.

    Raises:
        InputError: naming the file and line of a malformed record.
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
        metadata = dict(obj.get("metadata") or {})
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
