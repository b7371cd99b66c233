"""Messages name the store a qdrant-client store really reaches: a local path is "the local
Qdrant store at PATH" and ``:memory:`` qdrant-client's in-memory store, not "the Qdrant
server" (which every qdrant-client store used to be called)."""

from __future__ import annotations

import pytest
from qdrant_client import QdrantClient

from m3retriever import FingerprintMismatchError
from m3retriever.store import open_store
from m3retriever.store.remote import client_location
from m3retriever.store.schema import CollectionSpec


def test_a_local_path_is_named_as_such_in_a_fingerprint_error(tmp_path):
    path = tmp_path / "local"
    store = open_store(client=QdrantClient(path=str(path)))
    try:
        store.ensure_collection(CollectionSpec("c", dense_dim=4, sparse=False, fingerprint={"dense": {"model": "a"}}))
        with pytest.raises(FingerprintMismatchError) as caught:
            store.ensure_collection(CollectionSpec("c", dense_dim=4, sparse=False, fingerprint={"dense": {"model": "b"}}))
    finally:
        store.close()
    message = str(caught.value)
    assert f"collection 'c' at the local Qdrant store at {path} was built" in message
    assert "server" not in message


def test_each_kind_of_client_is_named():
    assert client_location(QdrantClient(location=":memory:")) == "qdrant-client's in-memory store (:memory:)"
    assert open_store(":memory:").where == "qdrant-client's in-memory store (:memory:)"  # type: ignore[attr-defined]
    # No connection is made (no version check); credentials in the URL stay out of messages.
    quiet = {"check_compatibility": False}
    assert client_location(QdrantClient(url="http://localhost:6333", **quiet)) == "the Qdrant server at http://localhost:6333"
    secret = QdrantClient(url="https://user:secret@db.example:6333", **quiet)
    assert client_location(secret) == "the Qdrant server at https://db.example:6333"
    assert client_location(QdrantClient(host="db.example", port=6400, **quiet)) == "the Qdrant server at db.example:6400"
    assert client_location(object()) == "the Qdrant server"
