"""Warm-up: read an embedded collection's vectors and indexes into the page cache, through the
store alone, no models."""

from __future__ import annotations

import time
from dataclasses import dataclass

from m3retriever.opening import OpenedCollection

__all__ = ["WarmUpReport", "warm_up"]


@dataclass(frozen=True)
class WarmUpReport:
    """What :func:`warm_up` read: bytes (0 on a server, which keeps its own caches) and seconds."""

    collection: str
    bytes: int
    seconds: float


def warm_up(collection: OpenedCollection, *, payloads: bool = False) -> WarmUpReport:
    """Read every vector storage and index file of ``collection`` once (with ``payloads``, its
    payloads too), so that the first queries of a process that opens it afterwards do not wait
    on disk. Nothing is written.

    Raises:
        CollectionNotFoundError: if the collection does not exist.
    """
    collection.require()
    start = time.perf_counter()
    read = collection.store.warm_up(collection.name, payloads=payloads)
    return WarmUpReport(collection.name, read, time.perf_counter() - start)
