"""``ingest FOLDER --sync``: after the folder's new and changed files are written, delete the
stored documents that came from that folder (their chunks carry its absolute path as
``ingest_root``) and whose file is gone or no longer taken by the include/exclude patterns.

Safe to interrupt and re-run: the deletions come last, so an interrupt before them loses
nothing (a renamed file is written under its new name before the old one is deleted), and
each deletion batch is one store call that Ctrl-C waits for; a re-run finds what is left to
delete by comparing the store with the folder again. A file still in the folder that cannot be
read now keeps its stored documents (it is reported as skipped).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from m3retriever.filters import AnyOf, Eq, Filter
from m3retriever.ingest.folder import FolderTally
from m3retriever.ingest.run import batched, sigint_deferred
from m3retriever.store.schema import Store
from m3retriever.tenancy import Scope

__all__ = ["ROOT_FIELD", "DELETE_BATCH", "stale_documents", "only_folder", "orphan_notes", "delete_documents"]

logger = logging.getLogger(__name__)

ROOT_FIELD = "ingest_root"
"""Payload key: the absolute folder a folder ingest read the chunk's document from."""

DELETE_BATCH = 256
"""Documents deleted per store call."""


def _scoped(flt: Filter, scope: Scope | None) -> Filter:
    return scope.within(flt) if scope is not None else flt


def stale_documents(
    store: Store,
    collection: str,
    root: str,
    tally: FolderTally,
    scope: Scope | None,
    *,
    unmarked: bool = False,
    orphans: dict[str, list[str]] | None = None,
) -> list[str]:
    """The doc ids stored from folder ``root`` (within ``scope``) that the folder read into
    ``tally`` no longer holds: their file is gone or left out, or it was read into other
    documents (a file read into several).

    Args:
        unmarked: Count a document stored without any ``ingest_root`` (written before roots
            were stored with chunks) as the folder's when it looks like a folder's document
            (its doc id is its source, or its source and a ``#n``); for a collection whose only
            recorded folder is ``root``.
        orphans: Receives, per other folder that no longer exists (moved or deleted), the
            doc ids stored from it: a sync leaves them, and the caller says so.
    """
    stale: list[str] = []
    for record in store.scroll(collection, _scoped(Eq("chunk_index", 0), scope)):
        payload = record.payload
        doc_id, source = payload.get("doc_id"), payload.get("source")
        if not isinstance(doc_id, str) or not isinstance(source, str):
            continue
        origin = payload.get(ROOT_FIELD)
        if origin != root and not (unmarked and origin is None and _folder_like(doc_id, source)):
            if orphans is not None and isinstance(origin, str) and not Path(origin).is_dir():
                orphans.setdefault(origin, []).append(doc_id)
            continue
        if source not in tally.selected:
            stale.append(doc_id)
        elif source in tally.produced and doc_id not in tally.produced[source]:
            stale.append(doc_id)
    return sorted(stale)


def _folder_like(doc_id: str, source: str) -> bool:
    return doc_id == source or (doc_id.startswith(source + "#") and doc_id[len(source) + 1 :].isdigit())


def only_folder(roots: Sequence[dict[str, object]], root: str, tenant: str | None) -> bool:
    """Whether ``root`` is the only folder recorded in ``roots`` (the collection's ingest roots)
    for ``tenant``."""
    folders = {str(e.get("path")) for e in roots if e.get("kind") == "folder" and e.get("tenant") == tenant}
    return folders == {root}


def orphan_notes(orphans: dict[str, list[str]]) -> list[str]:
    """What to tell about the documents of folders that no longer exist."""
    notes = []
    for origin, doc_ids in sorted(orphans.items()):
        first = ", ".join(sorted(doc_ids)[:3]) + (", ..." if len(doc_ids) > 3 else "")
        notes.append(
            f"{origin}: {len(doc_ids)} stored documents came from this folder, which no longer exists (moved or "
            f"deleted?); a sync deletes only what came from the folder it syncs, so they stay: delete them with "
            f"'m3retriever delete --doc-id ID' ({first})"
        )
    return notes


def delete_documents(store: Store, collection: str, doc_ids: Sequence[str], scope: Scope | None) -> int:
    """Delete every chunk of ``doc_ids`` (within ``scope``), a batch per store call; returns
    how many chunks were deleted."""
    deleted = 0
    for batch in batched(doc_ids, DELETE_BATCH):
        target = _scoped(AnyOf("doc_id", batch), scope)
        with sigint_deferred():  # Ctrl-C waits until the batch is deleted
            n = store.count(collection, target)
            if n:
                store.delete_by_filter(collection, target)
        deleted += n
        logger.info("sync: deleted %d documents (%d chunks) that left the folder", len(batch), n)
    if doc_ids:
        store.flush(collection)
    return deleted
