"""Add (or replace) the extra dense branch ``dense2`` of an existing collection.

Only the ``dense2`` encoder runs, over the chunk texts already stored: every other vector (the
``colbert`` multivectors included) and every payload is copied unchanged. Qdrant cannot add a
named vector to an existing collection, so the copy is built beside it and then swapped in; both
the copy and the recreated original are created from the description the collection keeps of
itself (``Store.stored_spec``: its vectors, index settings, tenant and indexed fields) with the
new ``dense2`` vector, and get everything kept with it (length totals, per tenant too, saved
search defaults, build settings):

1. **build**: ``<name>.dense2-build`` is created with the new schema, marked as building in its
   fingerprint, filled page by page (stored vectors + the new ``dense2`` vector), given
   everything kept with the collection, and only then marked complete.
2. **swap** (``Store.replace_collection``): in the embedded store the complete copy's folder
   is verified (it opens, with every point) and swapped in by renames recorded in a journal
   (:mod:`m3retriever.store.replace`): the original is never deleted before the copy is in
   place, and a swap cut short is finished by whatever opens the store next. On a server the
   copy is first marked as replacing the original, which is then recreated with the new schema
   and filled from it (no model runs); a swap cut short there is finished by whatever opens
   the collection next (``Store.finish_replace``).

A failure during the build leaves the original as it was (the next run starts the build over).
Run it with the configuration the collection was built with plus ``dense2_encoder`` /
``dense2_model`` (settings left unset follow the collection, as when a retriever opens it;
an index setting set to another value than the collection's is refused); a collection with an
older ``dense2`` gets the new one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Mapping

from m3retriever.branches import EncoderSet
from m3retriever.collection import collection_spec
from m3retriever.components import encoders_for
from m3retriever.config import refuse_tenant
from m3retriever.errors import CollectionNotFoundError, ConfigError
from m3retriever.ingest import batched
from m3retriever.ingest.headers import stored_encoder_text
from m3retriever.opening import OpenedCollection
from m3retriever.store.index_settings import INDEX_SETTINGS, adopt_index_settings
from m3retriever.store.kept import set_fingerprint
from m3retriever.store.schema import (
    DENSE2,
    CollectionSpec,
    ScoredRecord,
    Store,
    StoredPoint,
    check_fingerprint,
)

__all__ = ["BranchReport", "add_dense2_branch", "BUILD_SUFFIX"]

logger = logging.getLogger(__name__)

BUILD_SUFFIX = ".dense2-build"
_BUILDING = "building"
# Kept by each collection itself (written when it is created), never copied over it.
_OWN_KEYS = frozenset({"fingerprint", "spec", "index"})


@dataclass(frozen=True)
class BranchReport:
    """What :func:`add_dense2_branch` did: chunks encoded (0 when a finished build was only
    swapped in), chunks copied into the collection, and the wall time in seconds."""

    encoded: int
    copied: int
    seconds: float


def add_dense2_branch(collection: OpenedCollection, *, batch: int = 256) -> BranchReport:
    """Encode a collection's stored chunks with its configuration's ``dense2_encoder`` and add
    them as its ``dense2`` vector (see the module docstring for the two steps and what a
    failure leaves).

    Args:
        collection: The collection, opened (``must_exist``) with a configuration that names
            ``dense2_encoder`` (and ``dense2_model``); its writes wait until this is done.
        batch: Chunks read, encoded and written per store call.

    Raises:
        ConfigError: No ``dense2_encoder`` is configured, or the collection is opened for a
            tenant.
        CollectionNotFoundError: The collection does not exist.
        FingerprintMismatchError: The collection was built with other encoders.
    """
    config, settings = collection.config, collection.settings
    refuse_tenant(config, "add-branch")
    if config.dense2_encoder in (None, "", "none"):
        raise ConfigError("add-branch needs dense2_encoder (and dense2_model): the encoder of the new branch")
    collection.require()
    with collection.write_lock:
        encoders = encoders_for(settings)
        asked = {k: getattr(config, k) for k in INDEX_SETTINGS}  # explicit ones only
        return _run(collection.store, encoders, collection_spec(encoders, settings), asked, batch)


def _without_dense2(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fingerprint.items() if k not in (DENSE2, _BUILDING)}


def _target(store: Store, source: str, configured: CollectionSpec, asked: Mapping[str, Any]) -> CollectionSpec:
    """The description ``source`` was created with (its vectors, the multivector included,
    index settings as the engine records them, tenant and indexed fields), with the configured
    fingerprint and ``dense2`` vector: the schema of the copy and of the recreated original.

    Raises:
        ConfigError: An index setting set explicitly differs from the collection's.
    """
    stored = store.stored_spec(source)
    if stored is None:  # pragma: no cover - the caller checked it exists
        raise CollectionNotFoundError(source, store.where)
    own = adopt_index_settings(store, stored, asked)
    return replace(
        own,
        name=configured.name,
        fingerprint=configured.fingerprint,
        dense2_dim=configured.dense2_dim,
        dense2_distance=configured.dense2_distance,
    )


def _run(
    store: Store,
    encoders: EncoderSet,
    configured: CollectionSpec,
    asked: Mapping[str, Any],
    batch: int,
) -> BranchReport:
    start = time.perf_counter()
    name, build = configured.name, configured.name + BUILD_SUFFIX
    wanted = dict(configured.fingerprint)
    built = store.collection_fingerprint(build)
    encoded = 0
    if built is not None and dict(built) == wanted:  # a complete copy: only the swap is left
        spec = _target(store, build, configured, asked)
    else:  # build one from the original
        stored = store.collection_fingerprint(name)
        if stored is None:
            raise CollectionNotFoundError(name, store.where)
        check_fingerprint(name, store.where, _without_dense2(stored), _without_dense2(wanted))
        spec = _target(store, name, configured, asked)
        if built is not None:
            store.drop_collection(build)  # an interrupted build: start over
        encoded = _build(store, encoders, spec, build, batch)
    copied = _swap(store, spec, build, batch)
    return BranchReport(encoded, copied, time.perf_counter() - start)


def _copy_meta(store: Store, source: str, target: str) -> None:
    """Everything kept with ``source`` beside its points (length totals, per tenant too, saved
    search defaults, the settings it was built with) onto ``target``, which keeps its own
    fingerprint and description."""
    kept = {k: v for k, v in store.metadata(source).items() if k not in _OWN_KEYS}
    if kept:
        store.set_metadata(target, kept)


def _build(store: Store, encoders: EncoderSet, spec: CollectionSpec, build: str, batch: int) -> int:
    store.ensure_collection(replace(spec, name=build, fingerprint={**spec.fingerprint, _BUILDING: True}))
    done = 0
    for page in batched(store.scroll(spec.name, with_vectors=True, batch=batch), batch):
        texts = [stored_encoder_text(r.payload) for r in page]  # with its header, as ingest read it
        vectors = encoders.encode_dense2(texts)
        store.upsert(build, [_point(r, vectors[i].tolist()) for i, r in enumerate(page)])
        done += len(page)
        logger.info("add-branch %s: %d chunks encoded", spec.name, done)
    _copy_meta(store, spec.name, build)
    store.flush(build)
    set_fingerprint(store, build, spec.fingerprint)  # last: marks the copy complete
    return done


def _swap(store: Store, spec: CollectionSpec, build: str, batch: int) -> int:
    copied = store.replace_collection(spec.name, build, batch=batch)
    store.optimize(spec.name)
    logger.info("add-branch %s: %d chunks swapped in", spec.name, copied)
    return copied


def _point(record: ScoredRecord, dense2: Any) -> StoredPoint:
    """The stored point with every vector and the payload as they were, and ``dense2``."""
    vectors = {name: v for name, v in record.vectors.items() if name != DENSE2}
    return StoredPoint(id=record.id, payload=dict(record.payload), vectors={**vectors, DENSE2: dense2})
