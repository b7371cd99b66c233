"""Opening a collection, written once: the store a configuration names (finishing a replace that
was cut short, refusing an unfinished copy, creating nothing for a read), then the collection's
multivector flag, its own search defaults and the settings it was built with, resolved with the
configuration into the settings in force.

Light on purpose: commands that only open a store (``warm-up``, ``defaults``) import this, not
the ingest and search pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from m3retriever.config import Config
from m3retriever.config.built import load_built
from m3retriever.config.resolution import follow_collection, resolve
from m3retriever.config.saved import load_saved
from m3retriever.errors import StoreError
from m3retriever.store import open_store
from m3retriever.store.schema import COPYING_KEY, MULTIVECTOR, Store

__all__ = ["OpenedCollection", "open_collection", "open_configured_store", "stored_multivector"]


@dataclass(frozen=True)
class OpenedCollection:
    """A collection as opened by :func:`open_collection`.

    Attributes:
        store: The open store (the caller closes it, or hands it on).
        config: The configuration as given, its unset ``multivector`` following the collection.
        settings: ``config`` resolved with the collection's own search defaults and build
            settings: what encoders, reranker and search run with.
        saved: The collection's own search defaults.
        built: The settings it was built with.
    """

    store: Store
    config: Config
    settings: Config
    saved: Mapping[str, Any]
    built: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.settings.collection


def open_collection(
    config: Config, client: Any = None, *, store: Store | None = None, must_exist: bool = False
) -> OpenedCollection:
    """Open ``config``'s collection: the one opening sequence of the library.

    Args:
        config: The configuration as given.
        client: An existing ``qdrant_client.QdrantClient`` instead of ``config.location``.
        store: An already-open store to use (it is not closed on failure).
        must_exist: Raise :class:`~m3retriever.errors.CollectionNotFoundError` unless the
            collection exists, having created nothing.

    Raises:
        ConfigError: for settings that do not resolve (checked before anything opens).
        CollectionNotFoundError: ``must_exist`` and no such collection.
        StoreError: the collection is an unfinished copy, or the store cannot be opened.
    """
    base = resolve(config)  # checks the settings before anything opens
    opened = store or open_configured_store(base, client, must_exist=must_exist)
    try:
        followed = follow_collection(config, stored_multivector(opened, base.collection))
        saved = load_saved(opened, base.collection)
        built = load_built(opened, base.collection)
        settings = resolve(followed, saved=saved, built=built)
    except BaseException:
        if store is None:
            opened.close()
        raise
    # ... and pinned: a new collection gets the multivector setting its encoders are built with.
    return OpenedCollection(opened, follow_collection(followed, bool(settings.multivector)), settings, saved, built)


def stored_multivector(store: Store, collection: str) -> bool | None:
    """Whether ``collection`` stores the late-interaction multivectors (``None``: it does not
    exist)."""
    fingerprint = store.collection_fingerprint(collection)
    return None if fingerprint is None else MULTIVECTOR in fingerprint


def open_configured_store(config: Config, client: Any = None, *, must_exist: bool = False) -> Store:
    """Open the store ``config`` names (its location, API key and cluster shape).

    Args:
        config: A configuration (its ``location``, ``api_key``, ``shard_number`` and
            ``replication_factor`` are used).
        client: An existing ``qdrant_client.QdrantClient`` to use instead of the location.
        must_exist: Read commands: raise :class:`~m3retriever.errors.CollectionNotFoundError`
            unless ``config.collection`` exists, creating nothing.

    A replace of ``config.collection`` that was cut short is finished first (the embedded
    store finishes every one when it opens).
    """
    store = open_store(
        config.location,
        client=client,
        api_key=config.api_key,
        shard_number=config.shard_number,
        replication_factor=config.replication_factor,
        must_have=config.collection if must_exist else None,
    )
    if not must_exist:  # (open_store did it otherwise)
        store.finish_replace(config.collection)
    copying = store.metadata(config.collection).get(COPYING_KEY)
    if copying:
        store.close()
        source = copying.get("source") if isinstance(copying, dict) else None
        raise StoreError(
            f"collection {config.collection!r} at {getattr(store, 'where', config.location)} is an unfinished copy "
            f"of {source or 'another collection'}: run the same `m3retriever collection copy` again to finish it (its points "
            "and settings arrive at the end), or drop it and copy again"
        )
    return store
