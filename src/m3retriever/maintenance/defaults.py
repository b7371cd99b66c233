"""A collection's own search defaults, changed and shown (``m3retriever collection defaults``):
through the store alone, no models."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from m3retriever.config.built import settings_in_force
from m3retriever.config.saved import SAVABLE, check_saved
from m3retriever.errors import ConfigError
from m3retriever.opening import OpenedCollection
from m3retriever.store.kept import search_defaults

__all__ = ["change_defaults", "defaults_in_force", "stored_keys"]


def change_defaults(
    collection: OpenedCollection, values: Mapping[str, Any], remove: Sequence[str] = ()
) -> dict[str, Any]:
    """Change some of the search defaults a collection keeps, leaving the others as they are.

    Args:
        collection: An existing collection.
        values: Settings to save (a value ``None``, or ``hnsw_ef`` 0, removes that setting).
        remove: Settings to remove (:data:`~m3retriever.config.saved.SAVABLE` names, or any
            key it keeps: a hand-edited one can be removed this way).

    Returns:
        What the collection keeps afterwards.

    Raises:
        ConfigError: for an unknown setting or a bad value (nothing is written), or when what
            the collection keeps already is corrupted.
        CollectionNotFoundError: if the collection does not exist.
    """
    collection.require()
    name = collection.name
    stored = search_defaults(collection.store, name)  # what is removed is not checked
    if not isinstance(stored, Mapping):
        if set(SAVABLE) - set(remove):
            check_saved(name, stored)  # not a mapping: the error says to clear them all
        stored = {}
    unknown = sorted(set(remove) - set(SAVABLE) - set(stored))
    if unknown:
        raise ConfigError(f"{unknown} are not settings a collection can keep; it can keep {list(SAVABLE)}")
    merged = check_saved(name, {**{k: v for k, v in stored.items() if k not in remove}, **values})
    return collection.save_defaults(merged)


def stored_keys(collection: OpenedCollection) -> list[str]:
    """Every key the collection keeps, known or not (so that clearing all removes all)."""
    stored = search_defaults(collection.store, collection.name)
    return list(stored) if isinstance(stored, dict) else []


def defaults_in_force(collection: OpenedCollection) -> dict[str, dict[str, Any]]:
    """Each savable setting's value in force and where it comes from (``explicit``,
    ``collection``, ``profile``, ``default``)."""
    in_force = settings_in_force(collection.config, collection.settings, collection.saved, collection.built)
    return {name: in_force[name if name == "query_instruction" else "search." + name] for name in SAVABLE}
