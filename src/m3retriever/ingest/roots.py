"""Where ingested paths came from: sources relative to the ingested folder, its root kept once.

A folder ingest stores each file's ``source`` relative to the folder (``tutorial/a.md``), a
JSONL or BEIR ingest its records' own ``source`` or else the file's name; the folder itself
(made absolute) is recorded once per ingest in the collection's metadata under
:data:`INGEST_ROOTS`, the latest :data:`MAX_ROOTS` distinct ones.

Collections ingested before sources were relative hold the path as it was typed
(``../corpus/docs/tutorial/a.md``), and a source is part of a document's content hash: the
unchanged documents of such a collection would all be encoded and written again. So a
re-ingest keeps a document's stored source when it is the old form of the same file and the
document is otherwise unchanged (:func:`keep_old_sources`): nothing is encoded or written,
its doc id stays, and its source becomes relative when the document next changes.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Literal

from m3retriever.errors import InputError
from m3retriever.store.schema import Store
from m3retriever.types import Document

__all__ = [
    "INGEST_ROOTS",
    "MAX_ROOTS",
    "FIELDS_VERSION",
    "ingest_root",
    "ingest_roots",
    "keep_old_sources",
    "record_root",
]

INGEST_ROOTS = "ingest_roots"
"""Metadata key: a list of ``{"path", "kind", "at"[, "tenant"][, "document_fields"]}``, oldest first."""

MAX_ROOTS = 32
"""Most roots kept; an ingest of a root already listed moves it to the end."""

FIELDS_VERSION = 1
"""Recorded with a folder's root (key ``document_fields``): its documents were written with
the fields of :mod:`m3retriever.ingest.document_fields` (``folders``, ``title``...)."""


def ingest_root(path: str | Path, kind: Literal["beir", "folder", "jsonl"]) -> Path:
    """The absolute folder the sources of an ingest of ``path`` are relative to: the folder
    itself, or the folder holding a JSONL file (symbolic links resolved)."""
    p = Path(path).resolve()
    return p.parent if kind == "jsonl" else p


def ingest_roots(store: Store, name: str) -> list[dict[str, Any]]:
    """The ingest roots recorded with collection ``name``, oldest first (empty if none)."""
    raw = store.metadata(name).get(INGEST_ROOTS)
    return [dict(entry) for entry in raw if isinstance(entry, dict)] if isinstance(raw, list) else []


def record_root(
    store: Store, name: str, root: Path, kind: str, tenant: str | None = None, *, now: _dt.datetime | None = None
) -> None:
    """Record that ``root`` was ingested into collection ``name`` (by ``tenant``) now: one
    entry per (root, tenant), the latest last, at most :data:`MAX_ROOTS`."""
    entry: dict[str, Any] = {
        "path": str(root),
        "kind": kind,
        "at": (now or _dt.datetime.now(_dt.timezone.utc)).isoformat(timespec="seconds"),
    }
    if tenant is not None:
        entry["tenant"] = tenant
    if kind == "folder":
        entry["document_fields"] = FIELDS_VERSION
    with store.mutex:
        kept = [e for e in ingest_roots(store, name) if (e.get("path"), e.get("tenant")) != (entry["path"], tenant)]
        store.set_metadata(name, {INGEST_ROOTS: (kept + [entry])[-MAX_ROOTS:]})


def _old_form(stored: Any, source: str) -> bool:
    """Whether ``stored`` is ``source`` as an older ingest wrote it: the typed path of the
    same file (``../docs/a/b.md`` or ``..\\docs\\a\\b.md`` for ``a/b.md``)."""
    if not isinstance(stored, str) or stored == source:
        return False
    return stored.replace("\\", "/").endswith("/" + source)


def keep_old_sources(
    docs: list[Document],
    store: Store,
    name: str,
    first_point: Callable[[str], str],
    digest: Callable[[Document], str],
) -> list[Document]:
    """``docs`` with the stored source put back where a document is stored with the old
    (as typed) form of its source and is otherwise unchanged, so that the ingest skips it.

    Args:
        docs: Documents about to be ingested.
        store: The store (collection ``name`` exists).
        name: The collection.
        first_point: The point id of a document's chunk 0 from its doc id.
        digest: The content hash the ingest stores with a document.
    """
    candidates = {first_point(d.doc_id): d for d in docs if d.source is not None}
    if not candidates:
        return docs
    stored = {r.id: r.payload for r in store.retrieve(name, list(candidates))}
    kept: dict[str, str] = {}
    for point, doc in candidates.items():
        payload = stored.get(point)
        if payload is None or doc.source is None or not _old_form(payload.get("source"), doc.source):
            continue
        old = replace(doc, source=payload["source"])
        try:
            if digest(old) == payload.get("content_hash"):
                kept[doc.doc_id] = payload["source"]
        except InputError:  # another tenant's document: the ingest itself says so
            continue
    if not kept:
        return docs
    return [replace(d, source=kept[d.doc_id]) if d.doc_id in kept else d for d in docs]
