"""Opening a collection, written once: the store a configuration names (finishing a replace that
was cut short, refusing an unfinished copy, creating nothing for a read), then the collection's
multivector flag, its own search defaults and the settings it was built with, resolved with the
configuration into the settings in force.

Light on purpose: commands that only open a store (``warm-up``, ``defaults``) import this, not
the ingest and search pipeline.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Mapping

from m3retriever.config import Config, SearchConfig
from m3retriever.config.built import load_built
from m3retriever.config.resolution import follow_collection, resolve
from m3retriever.config.saved import as_values, check_saved, load_saved
from m3retriever.config.settings import SearchSettings, Settings
from m3retriever.errors import CollectionNotFoundError, StoreError
from m3retriever.ingest.headers import FINGERPRINT_KEY as CHUNK_HEADERS
from m3retriever.store import open_store
from m3retriever.store.kept import set_search_defaults
from m3retriever.store.schema import COPYING_KEY, MULTIVECTOR, Store
from m3retriever.tenancy import Scope

__all__ = ["OpenedCollection", "open_collection", "open_configured_store", "stored_multivector"]

logger = logging.getLogger(__name__)


class OpenedCollection:
    """A collection as opened by :func:`open_collection`: what every operation on a stored
    collection (search, ingest, maintenance) starts from.

    Attributes:
        store: The open store.
        config: The configuration as given, its unset ``multivector`` following the collection.
        settings: ``config`` resolved with the collection's own search defaults and build
            settings: what encoders, reranker and search run with.
        saved: The collection's own search defaults.
        built: The settings it was built with.
        scope: The tenant the collection is confined to (``None``: all of it).
        write_lock: Held by every write through this opening (ingest, delete, saving
            defaults, maintenance), so that they run one at a time; reads never wait on it.
    """

    def __init__(
        self, store: Store, config: Config, settings: Settings, saved: Mapping[str, Any], built: Mapping[str, Any],
        *, owns_store: bool,
    ) -> None:  # fmt: skip
        self.store = store
        self.config = config
        self.settings = settings
        self.saved: dict[str, Any] = dict(saved)
        self.built: dict[str, Any] = dict(built)
        s = settings
        self.scope = Scope(s.tenant_field, s.tenant) if s.tenant and s.tenant_field else None
        self.write_lock = threading.Lock()
        self._owns_store = owns_store

    @property
    def name(self) -> str:
        """The collection's name."""
        return self.settings.collection

    def exists(self) -> bool:
        """Whether the collection is in the store (a new one is created by its first write)."""
        return self.store.has_collection(self.name)

    @property
    def where(self) -> str:
        """Where its store is (a directory, ``:memory:`` or a URL), for messages."""
        return self.store.where

    def require(self) -> None:
        """Raise :class:`~m3retriever.errors.CollectionNotFoundError` unless the collection
        exists: the operations that need one say so here, in these words."""
        if not self.exists():
            raise CollectionNotFoundError(self.name, self.where)

    def search_settings(self, **options: Any) -> SearchSettings:
        """The search settings a call with ``options`` runs with (``None`` values ignored)."""
        changes = {k: v for k, v in options.items() if v is not None}
        if not changes:
            return self.settings.search
        return resolve(self.config, saved=self.saved, built=self.built, **changes).search

    def save_defaults(self, values: SearchConfig | Mapping[str, Any]) -> dict[str, Any]:
        """Replace the collection's own search defaults (it must exist); they apply here at
        once, except ``query_instruction``, which applies when the collection is next opened.

        Raises:
            ConfigError: for a setting a collection cannot keep, or a bad value.
        """
        checked = check_saved(self.name, as_values(values))
        with self.write_lock:
            set_search_defaults(self.store, self.name, checked)
        if checked.get("query_instruction") != self.saved.get("query_instruction"):
            logger.info("query_instruction applies when collection %r is next opened", self.name)
        self._rebase(checked)
        return dict(checked)

    def clear_defaults(self) -> None:
        """Remove the collection's own search defaults (the profile's apply again)."""
        if self.exists():
            with self.write_lock:
                set_search_defaults(self.store, self.name, {})
        self._rebase({})

    def _rebase(self, saved: Mapping[str, Any]) -> None:
        self.settings = resolve(self.config, saved=saved, built=self.built)
        self.saved = dict(saved)

    def close(self) -> None:
        """Close the store if this opening opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> "OpenedCollection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_collection(
    config: Config,
    client: Any = None,
    *,
    store: Store | None = None,
    must_exist: bool = False,
    with_saved: bool = True,
) -> OpenedCollection:
    """Open ``config``'s collection: the one opening sequence of the library.

    Args:
        config: The configuration as given.
        client: An existing ``qdrant_client.QdrantClient`` instead of ``config.location``.
        store: An already-open store to use (it is not closed on failure, nor by
            :meth:`OpenedCollection.close`).
        must_exist: Raise :class:`~m3retriever.errors.CollectionNotFoundError` unless the
            collection exists, having created nothing.
        with_saved: Read the collection's own search defaults. Off: open without them, as
            the command that repairs a corrupted record does (they are refused otherwise).

    Raises:
        ConfigError: for settings that do not resolve, or corrupted saved search defaults.
        CollectionNotFoundError: ``must_exist`` and no such collection.
        StoreError: the collection is an unfinished copy, or the store cannot be opened.
    """
    opened = store or open_configured_store(config, client, must_exist=must_exist)
    try:
        fingerprint = opened.collection_fingerprint(config.collection)
        followed = follow_collection(config, stored_multivector(opened, config.collection), stored_headers(fingerprint))
        saved = load_saved(opened, config.collection) if with_saved else {}
        built = load_built(opened, config.collection)
        settings = resolve(followed, saved=saved, built=built)
    except BaseException:
        if store is None:
            opened.close()
        raise
    # ... and pinned: a new collection gets the multivector setting its encoders are built with.
    given = follow_collection(followed, settings.multivector, settings.chunk_headers)
    return OpenedCollection(opened, given, settings, saved, built, owns_store=store is None)


def stored_multivector(store: Store, collection: str) -> bool | None:
    """Whether ``collection`` stores the late-interaction multivectors (``None``: it does not
    exist)."""
    fingerprint = store.collection_fingerprint(collection)
    return None if fingerprint is None else MULTIVECTOR in fingerprint


def stored_headers(fingerprint: Mapping[str, Any] | None) -> str | None:
    """The chunk headers a collection's vectors were encoded with (``None``: no collection;
    ``"off"`` for one whose fingerprint names none, built before the setting or with it off)."""
    if fingerprint is None:
        return None
    value = fingerprint.get(CHUNK_HEADERS, "off")
    return value if isinstance(value, str) else "off"


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
