"""Upserts for a bulk load: points written in batches of the size Qdrant recommends (64 to
256), each batch tried again after a transient error (a timeout, a dropped connection, a server
answering 429 or 5xx while it is busy or a peer restarts) with a growing pause. Re-sending a
batch is safe: an upsert by id overwrites."""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

from m3retriever.store.schema import Store, StoredPoint

__all__ = ["UPSERT_BATCH", "is_transient", "upsert_batches"]

logger = logging.getLogger(__name__)

UPSERT_BATCH = 256
"""Points per upsert request in a bulk load (Qdrant's guidance: 64 to 256)."""

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# By name, so that neither client library has to be imported: qdrant-client's errors for a
# request that never got an answer, httpx's and the standard library's transport errors.
_TRANSPORT = frozenset(
    {
        "ResponseHandlingException",
        "TransportError",
        "TimeoutException",
        "ConnectError",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "ReadTimeout",
        "WriteTimeout",
        "ConnectTimeout",
        "PoolTimeout",
    }
)
_GRPC_RETRY = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"})


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is one that the same request may not
    meet again: no answer (a timeout, a connection refused or dropped), HTTP 408/425/429/5xx, or
    a gRPC status of an unavailable, busy or overloaded server."""
    seen: BaseException | None = exc
    for _ in range(8):  # the error and what it was raised from
        if seen is None:
            return False
        if isinstance(seen, (ConnectionError, TimeoutError)):
            return True
        names = {cls.__name__ for cls in type(seen).__mro__}
        if names & _TRANSPORT:
            return True
        status = getattr(seen, "status_code", None)
        if isinstance(status, int) and status in _RETRY_STATUS:
            return True
        code = getattr(seen, "code", None)
        if callable(code) and "RpcError" in names:
            try:
                return getattr(code(), "name", "") in _GRPC_RETRY
            except Exception:  # noqa: BLE001 - a status we cannot read is not one to retry on
                return False
        seen = seen.__cause__ or seen.__context__
    return False


def upsert_batches(
    store: Store,
    name: str,
    points: Sequence[StoredPoint],
    *,
    batch: int = UPSERT_BATCH,
    attempts: int = 5,
    pause: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Upsert ``points`` into collection ``name`` ``batch`` at a time, each batch tried up to
    ``attempts`` times while its error is transient (:func:`is_transient`), waiting ``pause``
    seconds, then twice as long each time.

    Raises:
        Exception: the last error of a batch that failed ``attempts`` times, or the first error
            that is not transient.
    """
    for start in range(0, len(points), max(1, batch)):
        part = points[start : start + max(1, batch)]
        wait = pause
        for attempt in range(1, attempts + 1):
            try:
                store.upsert(name, part)
                break
            except Exception as exc:
                if attempt == attempts or not is_transient(exc):
                    raise
                logger.warning(
                    "upsert of %d points into %r failed (%s); trying again in %.1fs (%d/%d)",
                    len(part),
                    name,
                    exc,
                    wait,
                    attempt,
                    attempts - 1,
                )
                sleep(wait)
                wait *= 2
