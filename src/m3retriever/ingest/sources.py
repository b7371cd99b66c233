"""Read documents from JSONL files and BEIR corpora (folders: :mod:`m3retriever.ingest.folder`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping

from m3retriever.errors import InputError
from m3retriever.ingest.folder import TEXT_SUFFIXES, read_folder
from m3retriever.ingest.sections import check_structure
from m3retriever.ingest.stream import DocumentStream
from m3retriever.ingest.text_files import TextReader, count_lines, open_text
from m3retriever.types import Document
from m3retriever.validation import MAX_METADATA_DEPTH, check_doc_id, check_metadata, check_source, check_text

__all__ = [
    "source_kind",
    "read_folder",
    "read_jsonl",
    "read_beir_corpus",
    "DocumentStream",
    "open_text",
    "TextReader",
    "iter_jsonl_objects",
    "coerce_document",
    "TEXT_SUFFIXES",
]

logger = logging.getLogger(__name__)

_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def source_kind(path: str | Path) -> Literal["beir", "folder", "jsonl"]:
    """What an ingest path is: a BEIR folder, a folder of text files or a JSONL(.gz) file;
    reads nothing (so a command can check its paths before it opens a store).

    Raises:
        InputError: the path does not exist or is of another kind, naming what to pass.
    """
    p = Path(path)
    if p.is_dir():
        return "beir" if (p / "corpus.jsonl").exists() or (p / "corpus.jsonl.gz").exists() else "folder"
    if p.is_file() and (p.name.endswith(".jsonl") or p.name.endswith(".jsonl.gz")):
        return "jsonl"
    if p.exists():
        raise InputError(f"{path}: pass a folder of documents, a .jsonl(.gz) file or a BEIR folder")
    raise InputError(f"{path} does not exist")


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
    text = check_text(doc.text, where, max_chars)
    return Document(
        text=text,
        doc_id=doc_id,
        metadata=check_metadata(doc.metadata, where),
        source=check_source(doc.source, where),
        structure=check_structure(doc.structure, len(text), where),
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


def read_jsonl(path: str | Path, *, text_field: str = "text", id_field: str = "doc_id") -> DocumentStream:
    """The documents of a JSONL file (one object per line; ``.gz`` accepted), read as iterated;
    ``len()`` counts the file's lines.

    Each line needs ``text_field`` and ``id_field`` (``id``/``_id`` are accepted too);
    ``title`` is prepended to the text when present; ``metadata`` (an object) and
    ``source`` are optional (a record without ``source`` gets the file's name, relative to the
    folder holding it: ``corpus.jsonl``); other top-level fields are kept as metadata.

    Raises:
        InputError: naming the file and line of a malformed record, or the file when it cannot
            be read.
    """
    path = Path(path)
    stream = DocumentStream(lambda: count_lines(path))
    return stream._read(_jsonl_documents(path, text_field, id_field))


def _jsonl_documents(path: Path, text_field: str, id_field: str) -> Iterator[Document]:
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
            {"text": text, "doc_id": doc_id, "metadata": metadata, "source": obj.get("source", path.name)},
            where=where,
        )


def read_beir_corpus(folder: str | Path) -> DocumentStream:
    """The documents of a BEIR-layout dataset (``corpus.jsonl`` or ``corpus.jsonl.gz``)."""
    root = Path(folder)
    for name in ("corpus.jsonl.gz", "corpus.jsonl"):
        if (root / name).is_file():
            return read_jsonl(root / name, id_field="_id")
    raise InputError(f"{folder} is not a BEIR dataset: no corpus.jsonl(.gz) in it")
