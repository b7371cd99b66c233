"""Bulk-load upserts (:mod:`m3retriever.store.batched_upsert`): Qdrant-sized requests, each
sent again after a transient error and only then; on qdrant-client's own store (``:memory:``,
the client a server store uses) whose requests fail as a busy or unreachable server's do."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from m3retriever.store import open_store
from m3retriever.store.batched_upsert import is_transient, upsert_batches
from m3retriever.store.schema import CollectionSpec, StoredPoint

SPEC = CollectionSpec(name="c", dense_dim=4, distance="cosine", sparse=False, bm25=False, fingerprint={"model": "x"})


def _points(n: int) -> list[StoredPoint]:
    return [
        StoredPoint(id=f"00000000-0000-0000-0000-{i:012d}", payload={"i": i}, dense=[1.0, float(i), 0.0, 1.0])
        for i in range(n)
    ]


def _status(code: int) -> UnexpectedResponse:
    return UnexpectedResponse(code, "status", b"", httpx.Headers())


class Failing:
    """The store's client with its first ``failures`` upserts failing with ``error``."""

    def __init__(self, client: Any, failures: int, error: Exception) -> None:
        self.send, self.failures, self.error = client.upsert, failures, error
        self.sizes: list[int] = []

    def upsert(self, name: str, points: list[Any], **kwargs: Any) -> Any:
        self.sizes.append(len(points))
        if self.failures:
            self.failures -= 1
            raise self.error
        return self.send(name, points=points, **kwargs)


@pytest.mark.parametrize(
    "error",
    [ResponseHandlingException(httpx.ConnectError("refused")), _status(503), _status(429), TimeoutError("slow")],
)
def test_a_transient_error_is_retried_and_every_point_lands_once(error: Exception) -> None:
    store: Any = open_store(":memory:")
    store.ensure_collection(SPEC)
    failing = Failing(store.client, 2, error)
    store.client.upsert = failing.upsert
    pauses: list[float] = []
    upsert_batches(store, "c", _points(600), batch=256, pause=0.5, sleep=pauses.append)
    assert failing.sizes == [256, 256, 256, 256, 88]  # the first batch three times, then the rest
    assert pauses == [0.5, 1.0]
    assert store.count("c") == 600


def test_an_error_that_is_not_transient_is_raised_at_once() -> None:
    store: Any = open_store(":memory:")
    store.ensure_collection(SPEC)
    failing = Failing(store.client, 1, _status(400))
    store.client.upsert = failing.upsert
    with pytest.raises(UnexpectedResponse):
        upsert_batches(store, "c", _points(10), sleep=lambda s: None)
    assert failing.sizes == [10]


def test_attempts_are_bounded() -> None:
    store: Any = open_store(":memory:")
    store.ensure_collection(SPEC)
    failing = Failing(store.client, 99, ConnectionResetError("reset"))
    store.client.upsert = failing.upsert
    with pytest.raises(ConnectionResetError):
        upsert_batches(store, "c", _points(10), attempts=3, sleep=lambda s: None)
    assert failing.sizes == [10, 10, 10]


def test_an_error_raised_from_a_transient_one_is_transient() -> None:
    try:
        try:
            raise httpx.ReadTimeout("timed out")
        except httpx.ReadTimeout as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert is_transient(wrapped)
    assert not is_transient(ValueError("bad vector"))
