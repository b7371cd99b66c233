"""The fields a folder ingest stores to filter documents by where they lie and what they are.

Every document read from a folder keeps, in its metadata:

- ``folders``: the folders its ``source`` lies in, outermost first, each as a path relative to
  the ingested folder (``guide/api/auth.md`` -> ``["guide", "guide/api"]``; ``[]`` at the
  top). ``{"folders": "guide"}`` matches everything under ``guide/`` at any depth, since a
  field holding a list matches when one of its elements does.
- ``suffix``: the file's suffix, lower case with its dot (``.md``, ``.pdf``).
- ``title``: the title its reader found (the ``<title>``, the document properties, the first
  heading), when it found one.
- ``file_name``: the file's name.

Collections ingested from a folder before ``folders`` and a Markdown file's ``title`` were
stored lack them: a filter on them would match none of those documents. :func:`warn_if_missing`
says so, with the fix: ingest the folder again. That ingest gives every document otherwise
unchanged its new fields in place, its stored vectors kept (:func:`add_document_fields`:
nothing is encoded), and then skips it as unchanged.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import replace
from typing import Any, Callable

from m3retriever.errors import InputError
from m3retriever.filters import And, AnyOf, Eq, Filter, Not, Range
from m3retriever.ingest.roots import FIELDS_VERSION, _old_form, ingest_roots
from m3retriever.store.schema import Store, StoredPoint
from m3retriever.types import Document

__all__ = ["FOLDERS", "DOCUMENT_FIELDS", "folders_of", "filter_fields", "warn_if_missing", "add_document_fields"]

logger = logging.getLogger("m3retriever.ingest")

FOLDERS = "folders"
DOCUMENT_FIELDS = (FOLDERS, "suffix", "title", "file_name")
"""The metadata keys a folder ingest stores for every document."""

_LATE_FIELDS = (FOLDERS, "title")  # stored only since FIELDS_VERSION 1
_checked: weakref.WeakKeyDictionary[Store, set[str]] = weakref.WeakKeyDictionary()  # per open store
_checked_lock = threading.Lock()


def folders_of(source: str) -> list[str]:
    """The folders of relative path ``source`` (``/`` between its parts), outermost first."""
    parts = source.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def filter_fields(flt: Filter | None) -> set[str]:
    """Every field ``flt`` tests."""
    if flt is None:
        return set()
    if isinstance(flt, (Eq, AnyOf, Range)):
        return {flt.field}
    if isinstance(flt, Not):
        return filter_fields(flt.inner)
    if isinstance(flt, And):
        return set().union(*(filter_fields(p) for p in flt.parts))
    return set()


def stale_roots(store: Store, name: str) -> list[str]:
    """The folders ingested into ``name`` before :data:`DOCUMENT_FIELDS` were stored."""
    roots: list[dict[str, Any]] = ingest_roots(store, name)
    return [
        str(e.get("path")) for e in roots if e.get("kind") == "folder" and e.get("document_fields", 0) < FIELDS_VERSION
    ]


def warn_if_missing(store: Store, name: str, flt: Filter | None) -> None:
    """Log a warning when ``flt`` tests ``folders`` or ``title`` and some folder was ingested
    into ``name`` before those fields were stored; checked once per store and collection (a
    later ingest always stores them)."""
    fields = filter_fields(flt) & set(_LATE_FIELDS)
    if not fields:
        return
    with _checked_lock:
        names = _checked.setdefault(store, set())
        if name in names:
            return
        names.add(name)
    stale = stale_roots(store, name)
    if stale:
        logger.warning(
            "collection %r: the filter tests %s, which the documents ingested from %s before this "
            "version lack, so they cannot match it; ingest %s again (m3retriever ingest FOLDER, or "
            "--sync), which adds them in place without encoding anything again",
            name, " and ".join(sorted(fields)), ", ".join(stale),
            "that folder" if len(stale) == 1 else "those folders",
        )  # fmt: skip


def _as_stored(doc: Document, stored: dict[str, Any]) -> Document:
    """``doc`` without the late fields that the stored metadata ``stored`` lacks."""
    meta = {k: v for k, v in doc.metadata.items() if k not in _LATE_FIELDS or k in stored}
    return replace(doc, metadata=meta)


def add_document_fields(
    docs: list[Document],
    store: Store,
    name: str,
    first_point: Callable[[str], str],
    digest: Callable[[Document], str],
    within: Filter | None = None,
) -> list[Document]:
    """Give the stored points of each of ``docs`` that an earlier version wrote without
    ``folders`` (or a Markdown ``title``), and that is otherwise unchanged, the document's new
    metadata and content hash, their vectors kept; the ingest then skips them as unchanged.
    Returns ``docs`` as they are. Runs before :func:`~m3retriever.ingest.roots.keep_old_sources`
    (a document stored with its source as typed is compared, and hashed, with that source).

    Args:
        docs: Documents read from a folder, about to be ingested.
        store: The store (collection ``name`` exists).
        name: The collection.
        first_point: The point id of a document's chunk 0 from its doc id.
        digest: The content hash the ingest stores with a document.
        within: The tenant's scope filter (``None``: none).
    """
    candidates = {first_point(d.doc_id): d for d in docs if FOLDERS in d.metadata}
    if not candidates:
        return docs
    for record in store.retrieve(name, list(candidates)):
        doc, payload = candidates[record.id], record.payload
        stored = payload.get("metadata")
        if not isinstance(stored, dict) or FOLDERS in stored:
            continue
        if doc.source is not None and _old_form(payload.get("source"), doc.source):
            doc = replace(doc, source=payload["source"])  # kept by keep_old_sources, which runs next
        try:
            if digest(_as_stored(doc, stored)) != payload.get("content_hash"):
                continue  # changed: the ingest writes it anew
            new_hash = digest(doc)
        except InputError:  # another tenant's document: the ingest itself says so
            continue
        late = {k: doc.metadata[k] for k in _LATE_FIELDS if k in doc.metadata and k not in stored}
        flt = And((Eq("doc_id", doc.doc_id), within)) if within is not None else Eq("doc_id", doc.doc_id)
        points = [
            StoredPoint(
                id=r.id,
                payload={**r.payload, "metadata": {**r.payload.get("metadata", {}), **late}, "content_hash": new_hash},
                vectors=dict(r.vectors),
            )
            for r in store.scroll(name, flt, with_vectors=True)
        ]
        store.upsert(name, points)
    return docs
