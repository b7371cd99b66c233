"""Vector stores: Qdrant Edge (embedded default) and qdrant-client (server, cluster, local)."""

from __future__ import annotations

import os
from typing import Any

from m3retriever.errors import CollectionNotFoundError, ConfigError
from m3retriever.store.schema import CollectionSpec, HybridQuery, ScoredRecord, Store, StoredPoint

__all__ = ["open_store", "Store", "CollectionSpec", "HybridQuery", "ScoredRecord", "StoredPoint"]


def open_store(
    location: str | os.PathLike[str] | None = None,
    *,
    client: Any = None,
    api_key: str | None = None,
    shard_number: int | None = None,
    replication_factor: int | None = None,
    must_have: str | None = None,
) -> Store:
    """Open a store from a location or an existing client (one code path for both).

    Args:
        location: A directory (Qdrant Edge, embedded; the default), ``":memory:"``
            (qdrant-client's in-process mode) or an ``http(s)://`` URL of a Qdrant server.
        client: An existing ``qdrant_client.QdrantClient`` (overrides ``location``).
        api_key: API key for a Qdrant server.
        shard_number: Shards for new collections on a server or cluster.
        replication_factor: Replicas for new collections on a cluster.
        must_have: Open the store only if it holds this collection (read commands): otherwise
            raise :class:`~m3retriever.errors.CollectionNotFoundError` having created nothing
            (no directory, no lock file).

    Returns:
        A :class:`Store`.

    Raises:
        ConfigError: if there is no location or it is not a string or path.
        StoreError: if the embedded store's directory cannot be created or locked (a file in
            the way, no permission), naming the path and the fix.
        StoreInUseError: if another process or open retriever holds the embedded store.
        CollectionNotFoundError: ``must_have`` is not there.
    """
    store: Store
    if client is not None:
        from m3retriever.store.remote import QdrantClientStore

        store = QdrantClientStore(client, shard_number=shard_number, replication_factor=replication_factor)
    else:
        location = _checked_location(location)
        if location == ":memory:" or location.startswith(("http://", "https://")):
            store = _open_client_store(location, api_key, shard_number, replication_factor)
        else:
            from m3retriever.store.edge import EdgeStore

            store = EdgeStore(location, create=must_have is None, collection=must_have or "")
    if must_have is not None:
        store.finish_replace(must_have)
    if must_have is not None and not store.has_collection(must_have):
        where = store.where
        store.close()
        raise CollectionNotFoundError(must_have, where)
    return store


def _checked_location(location: str | os.PathLike[str] | None) -> str:
    """``location`` as a string; refuses a missing location and one that is not a string or path."""
    if not location:
        raise ConfigError(
            "no store location: pass a directory (embedded Qdrant Edge), ':memory:', "
            "or a Qdrant server URL such as http://localhost:6333"
        )
    if not isinstance(location, (str, os.PathLike)):
        raise ConfigError(
            f"store location must be a string or a path, got {type(location).__name__}; pass a "
            "directory, ':memory:' or a Qdrant server URL"
        )
    return os.fspath(location)


def _open_client_store(
    location: str, api_key: str | None, shard_number: int | None, replication_factor: int | None
) -> Store:
    """A qdrant-client store that owns its client: in-process (``":memory:"``) or a server URL."""
    from qdrant_client import QdrantClient

    from m3retriever.store.remote import QdrantClientStore

    if location == ":memory:":
        qc = QdrantClient(location=":memory:")
    else:
        qc = QdrantClient(url=location, api_key=api_key)
    return QdrantClientStore(
        qc,
        shard_number=shard_number,
        replication_factor=replication_factor,
        owns_client=True,
    )
